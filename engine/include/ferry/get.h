// `get`: downloads every file named in a manifest from a collection into a
// local folder. The engine's entry point for the command line and tests.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ferry/error.h"
#include "ferry/retry_policy.h"

namespace ferry {

enum class ProgressMode { kAuto, kAlways, kNever };

struct GetOptions {
  std::string manifest;  // path of the manifest file
  std::string base_url;  // the collection's HTTPS base URL
  std::string dest_dir;  // local folder; created if missing
  std::string token;     // bearer token; empty for public collections
  std::string ca_file;   // CA bundle for the collection; empty: system's
  std::string report;    // JSON lines report file; empty: none

  int streams = 64;     // transfers in flight at once
  int connections = 4;  // connections to the collection, at most
  bool http1 = false;   // HTTP/1.1 only: one stream per connection
  RetryOptions retry;
  ProgressMode progress = ProgressMode::kAuto;  // progress line on stderr

  // Set (from any thread or a signal handler) to stop the run: no new
  // file starts, transfers in flight are abandoned and their temporary
  // files removed, the report is completed. Null: never.
  const std::atomic<bool>* interrupt = nullptr;

  // Where log lines go; nullptr for spdlog's default logger.
  std::shared_ptr<spdlog::logger> logger;
};

// What a run did, counted by the report.
struct RunSummary {
  uint64_t files = 0;          // entries in the manifest
  uint64_t ok = 0;             // arrived under their final names
  uint64_t verified = 0;       // ok, and equal to the manifest's xxh128
  uint64_t failed = 0;         // attempted and given up
  uint64_t not_attempted = 0;  // never started because the run stopped
  uint64_t bytes = 0;          // bytes of the files that arrived
  uint64_t retries = 0;        // attempts after a file's first
  double seconds = 0;
  std::optional<Error> stopped_by;    // why the run stopped early, if it did
  std::optional<Error> report_error;  // the report could not be written

  bool all_ok() const { return ok == files && !report_error; }
  // A few lines for people: counts, bytes, time, throughput.
  std::string ToText() const;
};

// Runs a download. Returns an error, before any file is touched, when the
// run cannot start (bad options, bad manifest lines, unusable destination);
// otherwise ok, with per-file outcomes in `summary` and the report.
[[nodiscard]] Status RunGet(const GetOptions& options, RunSummary* summary);

}  // namespace ferry
