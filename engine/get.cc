#include "ferry/get.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <mutex>

#include "disk/disk_writer.h"
#include "ferry/manifest.h"
#include "plan/planner.h"
#include "report/report.h"
#include "transport/transfer_loop.h"

namespace ferry {
namespace {

Error UsageError(std::string message) {
  return Error(ErrorCode::kUsage, RetryClass::kStopRun, std::move(message));
}

Status CheckOptions(const GetOptions& o) {
  if (o.base_url.rfind("https://", 0) != 0 &&
      o.base_url.rfind("http://", 0) != 0) {
    return UsageError(fmt::format(
        "base URL '{}' must start with https:// (or http://)", o.base_url));
  }
  if (o.dest_dir.empty()) return UsageError("no destination folder given");
  if (o.streams < 1) return UsageError("--streams must be at least 1");
  if (o.connections < 1) return UsageError("--connections must be at least 1");
  if (o.retry.max_attempts < 1) {
    return UsageError("--attempts must be at least 1");
  }
  return {};
}

// Creates the destination folder; refuses one that is not a folder.
Status PrepareDestination(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return ErrorFromErrno(ec.value(), "cannot create destination " + dir);
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return UsageError(fmt::format("destination {} is not a folder", dir));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return ErrorFromErrno(errno, "cannot write into destination " + dir);
  }
  return {};
}

std::string WithoutTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

Status RunGet(const GetOptions& options, RunSummary* summary) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::shared_ptr<spdlog::logger> log =
      options.logger ? options.logger : spdlog::default_logger();

  // Everything that can refuse the run does so before a file is touched.
  if (Status s = CheckOptions(options); !s.ok()) return s;
  ManifestCheck check;
  if (Status s = CheckManifest(options.manifest, &check); !s.ok()) return s;
  std::string dest = WithoutTrailingSlash(options.dest_dir);
  if (Status s = PrepareDestination(dest); !s.ok()) return s;
  Report report;
  if (Status s = report.Open(options.report, options.progress, check.entries);
      !s.ok()) {
    return s;
  }
  std::unique_ptr<DiskWriter> disk;
  if (Status s = DiskWriter::Create(DiskOptions(), &disk); !s.ok()) return s;

  TransferLoop* loop_for_wake = nullptr;
  Planner planner({options.manifest, options.base_url, dest},
                  [&loop_for_wake] { loop_for_wake->Wake(); });
  TransferLoop loop(options, &planner, disk.get(), &report, log.get());
  if (Status s = loop.Init(); !s.ok()) return s;
  loop_for_wake = &loop;

  planner.Start();
  loop.Run();
  planner.Stop();
  *summary = report.Finish();
  return {};
}

}  // namespace ferry
