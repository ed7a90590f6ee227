#include "ferry/run.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include "disk/disk_reader.h"
#include "disk/disk_writer.h"
#include "disk/journal.h"
#include "ferry/globus.h"
#include "ferry/manifest.h"
#include "plan/planner.h"
#include "report/report.h"
#include "transport/probe.h"
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
  if (!token.empty() && !IsHeaderSafeToken(token)) {
    return UsageError(
        "the token holds a space, control byte or non-ASCII byte");
  }
  return {};
}

// The manifest is read twice (checked whole, then planned), so it must be
// a regular file; the report must not overwrite it.
Status CheckFiles(const RunOptions& o) {
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

Status CheckOptions(const RunOptions& o) {
  if (Status s = CheckBaseUrl(o.base_url); !s.ok()) return s;
  if (Status s = CheckToken(o.token); !s.ok()) return s;
  const bool transfer = o.op == Operation::kGet || o.op == Operation::kPut;
  if (transfer && o.local_dir.empty()) {
    return UsageError(o.op == Operation::kGet ? "no destination folder given"
                                              : "no source folder given");
  }
  if (!transfer && o.sync != SyncLevel::kNone) {
    return UsageError("--sync applies to get and put only");
  }
  if (o.streams < 1) return UsageError("--streams must be at least 1");
  if (o.connections < 1) return UsageError("--connections must be at least 1");
  if (o.retry.max_attempts < 1) {
    return UsageError("--attempts must be at least 1");
  }
  return CheckFiles(o);
}

// The source folder of an upload must be a readable folder.
Status CheckSource(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return UsageError(fmt::format("source {} is not a folder", dir));
  }
  if (::access(dir.c_str(), R_OK | X_OK) != 0) {
    return ErrorFromErrno(errno, "cannot read source folder " + dir);
  }
  return {};
}

// What the manifest must hold for the run to make sense, beyond valid
// lines: folders only where a local tree can list them, and the xxh128
// column wherever the checksum level needs it.
Status CheckEntries(const RunOptions& o, ManifestFormat format,
                    const ManifestCheck& check) {
  // Most likely the wrong file, or one truncated on its way here.
  if (check.entries == 0) {
    return Error(ErrorCode::kManifest, RetryClass::kStopRun,
                 fmt::format("manifest {} names no files (only blank or "
                             "comment lines); nothing to do",
                             o.manifest));
  }
  if (check.recursive > 0 && o.op != Operation::kPut) {
    return UsageError(fmt::format(
        "{}:{}: --recursive names a folder on the collection, but its HTTPS "
        "interface cannot list folders; name each file instead (a "
        "recursive line works for put, where the local folder is listed)",
        o.manifest, check.first_recursive_line));
  }
  if (o.sync != SyncLevel::kChecksum) return {};
  ManifestReader reader;
  if (Status s = reader.Open(o.manifest, format); !s.ok()) return s;
  ManifestEntry entry;
  while (reader.Next(&entry)) {
    if (entry.xxh128) continue;
    return UsageError(fmt::format(
        "{}:{}: --sync checksum compares with the manifest's xxh128 column, "
        "and this line has none; `ferry manifest DIR` writes manifests with "
        "it",
        o.manifest, entry.line));
  }
  if (reader.error()) return *reader.error();
  return {};
}

// The manifest's format: as given, or detected and announced.
Status ChooseFormat(const RunOptions& o, spdlog::logger& log,
                    ManifestFormat* format) {
  *format = o.format;
  if (o.format != ManifestFormat::kAuto) return {};
  FormatGuess guess;
  if (Status s = DetectManifestFormat(o.manifest, &guess); !s.ok()) return s;
  *format = guess.format;
  if (guess.format == ManifestFormat::kGlobusBatch) {
    log.warn(
        "reading {} as a Globus batch file: {}; --format ferry reads it "
        "as one path per line",
        o.manifest, guess.reason);
  } else {
    log.info("reading {} as a ferry manifest: {}; --format chooses", o.manifest,
             guess.reason);
  }
  return {};
}

// Asks the collection which methods it allows, so that a run it would
// refuse stops before any file is touched.
Status CheckMethods(const RunOptions& o, spdlog::logger& log) {
  std::vector<std::string> needed;
  switch (o.op) {
    case Operation::kGet:
      needed = {"GET"};
      break;
    case Operation::kPut:
      needed = {"PUT"};
      break;
    case Operation::kRemove:
      needed = {"DELETE"};
      break;
    case Operation::kStat:
      needed = {"HEAD"};
      break;
  }
  if (o.sync != SyncLevel::kNone) needed.push_back("HEAD");
  if (o.op == Operation::kPut && o.sync == SyncLevel::kChecksum) {
    needed.push_back("GET");
  }
  std::string problem;
  Capabilities caps = ProbeCollection(o, &problem);
  if (!caps.answered) {
    log.debug("the collection did not answer OPTIONS ({}); going on", problem);
    return {};
  }
  log.debug("the collection allows: {}", caps.methods.value_or("(not said)"));
  for (const std::string& method : needed) {
    if (!caps.Allows(method)) {
      return Error(ErrorCode::kUsage, RetryClass::kStopRun,
                   fmt::format("the collection at {} does not allow {} (it "
                               "allows {}); nothing was done",
                               o.base_url, method, *caps.methods));
    }
  }
  return {};
}

// Creates a file in `dir` and removes it again. access(2) cannot tell
// whether a folder takes files: root passes its permission checks, and an
// immutable folder or a server that maps users refuses only the write.
Status ProbeWritable(const std::string& dir) {
  const std::string probe = fmt::format("{}/.ferry-probe-{}", dir, ::getpid());
  int fd = ::open(probe.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return UsageError(fmt::format("cannot write into destination {}: {}", dir,
                                  std::strerror(errno)));
  }
  ::close(fd);
  if (::unlink(probe.c_str()) != 0) {
    return UsageError(fmt::format("cannot remove the test file {}: {}", probe,
                                  std::strerror(errno)));
  }
  return {};
}

// Creates the destination folder; refuses one that is not a folder or
// does not take files, before any file is transferred.
Status PrepareDestination(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return UsageError(
        fmt::format("destination {} exists and is not a folder", dir));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return UsageError(
        fmt::format("cannot create destination {}: {}", dir, ec.message()));
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return UsageError(fmt::format("destination {} is not a folder", dir));
  }
  return ProbeWritable(dir);
}

std::string WithoutTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// What makes two runs the same run for the journal: the operation, both
// ends, and the manifest file as it is now (its place, size and mtime).
std::string RunIdentity(const RunOptions& options, const std::string& local) {
  std::error_code ec;
  std::filesystem::path manifest =
      std::filesystem::canonical(options.manifest, ec);
  struct stat st {};
  ::stat(options.manifest.c_str(), &st);
  return fmt::format("{} {} {} {} {} {}.{:09}", OperationName(options.op),
                     WithoutTrailingSlash(options.base_url), local,
                     manifest.string(), st.st_size, st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
}

}  // namespace

Status Run(const RunOptions& given, RunSummary* summary) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  RunOptions options = given;
  if (options.token_source) {
    options.token = options.token_source->Current(nullptr);
  }
  std::shared_ptr<spdlog::logger> log =
      options.logger ? options.logger : spdlog::default_logger();

  // Everything that can refuse the run does so before a file is touched.
  if (Status s = CheckOptions(options); !s.ok()) return s;
  ManifestFormat format;
  if (Status s = ChooseFormat(options, *log, &format); !s.ok()) return s;
  ManifestCheck check;
  if (Status s = CheckManifest(options.manifest, format, &check); !s.ok()) {
    return s;
  }
  if (Status s = CheckEntries(options, format, check); !s.ok()) return s;
  std::string local = WithoutTrailingSlash(options.local_dir);
  if (options.op == Operation::kPut) {
    if (Status s = CheckSource(local); !s.ok()) return s;
  }
  if (Status s = CheckMethods(options, *log); !s.ok()) return s;
  std::unique_ptr<Journal> journal;
  if (options.op == Operation::kGet) {
    if (Status s = PrepareDestination(local); !s.ok()) return s;
  }
  if (options.op == Operation::kGet || options.op == Operation::kPut) {
    // One spelling of the folder for the journal's records, however the
    // command line spelled it this time.
    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(local, ec);
    if (!ec) local = WithoutTrailingSlash(absolute.lexically_normal());
    Journal::Side side = options.op == Operation::kGet
                             ? Journal::Side::kDownload
                             : Journal::Side::kUpload;
    if (Status s =
            Journal::Open(local, side, RunIdentity(options, local), &journal);
        !s.ok()) {
      return s.error().code() == ErrorCode::kUsage
                 ? s
                 : UsageError(s.error().message());
    }
  }
  if (journal != nullptr &&
      journal->earlier_done() + journal->earlier_parts() > 0) {
    log->info(
        "continuing an unfinished run recorded in {}: {} files finished, {} "
        "partial",
        journal->path(), journal->earlier_done(), journal->earlier_parts());
  }
  TransferLoop* loop_for_wake = nullptr;
  Planner::Options plan;
  plan.op = options.op;
  plan.sync = options.sync;
  plan.manifest = options.manifest;
  plan.format = format;
  plan.base_url = options.base_url;
  plan.local_dir = local;
  plan.journal = journal.get();
  plan.split_above = options.split_above;
  Planner planner(
      plan, [&loop_for_wake] { loop_for_wake->Wake(); }, log.get());
  uint64_t files = check.entries;
  if (options.op == Operation::kPut && check.recursive > 0) {
    if (Status s = planner.CountFiles(&files); !s.ok()) return s;
  }

  Report report;
  if (Status s = report.Open(options.op, options.report, options.progress,
                             files, options.listing);
      !s.ok()) {
    return UsageError(s.error().message());
  }
  std::unique_ptr<DiskWriter> disk;
  if (options.op == Operation::kGet) {
    if (Status s = DiskWriter::Create(DiskOptions(), &disk); !s.ok()) return s;
  }
  std::unique_ptr<DiskReader> reader;
  if (options.op == Operation::kPut) {
    if (Status s = DiskReader::Create(ReaderOptions(), &reader); !s.ok()) {
      return s;
    }
  }
  TransferLoop loop(options, &planner, disk.get(), reader.get(), journal.get(),
                    &report, log.get());
  if (Status s = loop.Init(); !s.ok()) return s;
  loop_for_wake = &loop;

  planner.Start();
  loop.Run();
  planner.Stop();
  *summary = report.Finish();
  if (journal != nullptr) {
    if (summary->all_ok() && !summary->stopped_by) {
      journal->Remove();
    } else {
      journal->Flush(/*sync=*/true);
      log->warn(
          "run the same command again to continue: {} records what "
          "is done and what is partial",
          journal->path());
    }
  }
  return {};
}

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kGet:
      return "get";
    case Operation::kPut:
      return "put";
    case Operation::kRemove:
      return "rm";
    case Operation::kStat:
      return "stat";
  }
  return "?";
}

std::string_view SyncLevelName(SyncLevel level) {
  switch (level) {
    case SyncLevel::kNone:
      return "none";
    case SyncLevel::kExists:
      return "exists";
    case SyncLevel::kSize:
      return "size";
    case SyncLevel::kMtime:
      return "mtime";
    case SyncLevel::kChecksum:
      return "checksum";
  }
  return "?";
}

std::optional<SyncLevel> ParseSyncLevel(std::string_view name) {
  for (SyncLevel level : {SyncLevel::kExists, SyncLevel::kSize,
                          SyncLevel::kMtime, SyncLevel::kChecksum}) {
    if (name == SyncLevelName(level)) return level;
  }
  return std::nullopt;
}

std::optional<double> ParseByteRate(std::string_view text) {
  if (text.size() >= 2 && text.substr(text.size() - 2) == "/s") {
    text.remove_suffix(2);
  }
  return ParseByteSize(text);
}

std::optional<double> ParseByteSize(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(),
                                   value, std::chars_format::fixed);
  if (ec != std::errc() || end == text.data() || !std::isfinite(value) ||
      value < 0) {
    return std::nullopt;
  }
  std::string unit(end, text.data() + text.size());
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  double scale = 0;
  if (unit.empty() || unit == "b") {
    scale = 1;
  } else if (unit == "k" || unit == "kib") {
    scale = 1024.0;
  } else if (unit == "m" || unit == "mib") {
    scale = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gib") {
    scale = 1024.0 * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  return value * scale;
}

}  // namespace ferry
