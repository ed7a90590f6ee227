#include "ferry/get.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <memory>
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

// A collection's base URL: HTTPS (the token must not travel in clear), a
// host, and no query or fragment that file paths would be appended to.
Status CheckBaseUrl(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(),
                                                             curl_url_cleanup);
  auto bad = [&url](const std::string& why) {
    return UsageError(fmt::format("base URL {:?}: {}", url, why));
  };
  if (CURLUcode rc = curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0);
      rc != CURLUE_OK) {
    return bad(curl_url_strerror(rc));
  }
  auto has = [&parsed](CURLUPart part, std::string* value = nullptr) {
    char* text = nullptr;
    if (curl_url_get(parsed.get(), part, &text, 0) != CURLUE_OK) return false;
    if (value != nullptr) *value = text;
    curl_free(text);
    return true;
  };
  std::string scheme;
  if (!has(CURLUPART_SCHEME, &scheme) || scheme != "https") {
    return bad("must start with https://");
  }
  if (has(CURLUPART_QUERY) || has(CURLUPART_FRAGMENT)) {
    return bad("must not hold a query (?) or fragment (#)");
  }
  return {};
}

// A bearer token is sent in a header: visible ASCII only.
Status CheckToken(const std::string& token) {
  for (unsigned char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return UsageError(
          "the token holds a space, control byte or non-ASCII byte");
    }
  }
  return {};
}

// The manifest is read twice (checked whole, then planned), so it must be
// a regular file; the report must not overwrite it.
Status CheckFiles(const GetOptions& o) {
  struct stat manifest {};
  if (::stat(o.manifest.c_str(), &manifest) != 0) {
    return Error(ErrorCode::kManifest, RetryClass::kStopRun,
                 fmt::format("cannot read manifest {}: {}", o.manifest,
                             std::strerror(errno)));
  }
  if (!S_ISREG(manifest.st_mode)) {
    return UsageError(fmt::format(
        "manifest {} is not a regular file; ferry reads it twice, so save a "
        "piped list to a file first",
        o.manifest));
  }
  struct stat report {};
  if (!o.report.empty() && ::stat(o.report.c_str(), &report) == 0 &&
      report.st_dev == manifest.st_dev && report.st_ino == manifest.st_ino) {
    return UsageError("the report file is the manifest itself");
  }
  if (!o.ca_file.empty() && ::access(o.ca_file.c_str(), R_OK) != 0) {
    return UsageError(fmt::format("cannot read CA file {}: {}", o.ca_file,
                                  std::strerror(errno)));
  }
  return {};
}

Status CheckOptions(const GetOptions& o) {
  if (Status s = CheckBaseUrl(o.base_url); !s.ok()) return s;
  if (Status s = CheckToken(o.token); !s.ok()) return s;
  if (o.dest_dir.empty()) return UsageError("no destination folder given");
  if (o.streams < 1) return UsageError("--streams must be at least 1");
  if (o.connections < 1) return UsageError("--connections must be at least 1");
  if (o.retry.max_attempts < 1) {
    return UsageError("--attempts must be at least 1");
  }
  return CheckFiles(o);
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
  if (Status s = CheckManifest(options.manifest, ManifestFormat::kFerry, &check); !s.ok()) return s;
  std::string dest = WithoutTrailingSlash(options.dest_dir);
  if (Status s = PrepareDestination(dest); !s.ok()) return s;
  Report report;
  if (Status s = report.Open(options.report, options.progress, check.entries);
      !s.ok()) {
    return UsageError(s.error().message());
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
