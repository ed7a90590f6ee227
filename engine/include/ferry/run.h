// A run: one operation (get, put, rm, stat) applied to every file named in
// a manifest, between a collection and a local folder. The engine's entry
// point for the command line and tests.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ferry/error.h"
#include "ferry/manifest.h"
#include "ferry/retry_policy.h"
#include "ferry/token_source.h"

namespace ferry {

enum class Operation {
  kGet,     // download: GET each file into the local folder
  kPut,     // upload: PUT each local file to the collection
  kRemove,  // DELETE each file on the collection
  kStat,    // HEAD each file on the collection and list what it says
};
std::string_view OperationName(Operation op);

// When a file that is already at its destination is left alone, with the
// meanings the Globus Transfer service gives these levels.
enum class SyncLevel {
  kNone,      // always transfer
  kExists,    // skip when the destination exists
  kSize,      // skip when the destination has the same size
  kMtime,     // skip when the destination is not older than the source
  kChecksum,  // skip when the destination's XXH3-128 is the manifest's
};
std::string_view SyncLevelName(SyncLevel level);
// Parses "exists", "size", "mtime" or "checksum".
std::optional<SyncLevel> ParseSyncLevel(std::string_view name);

// Parses a size such as "16M", "1.5G", "500k" or "800000": bytes, with
// binary multiples (K = 1024 bytes, as curl's --limit-rate reads them);
// "KiB", "MiB" and "GiB" are also accepted. Empty when it is not a size.
std::optional<double> ParseByteSize(std::string_view text);
// The same for a rate in bytes per second, which may end in "/s".
std::optional<double> ParseByteRate(std::string_view text);

enum class ProgressMode { kAuto, kAlways, kNever };

struct RunOptions {
  Operation op = Operation::kGet;
  std::string manifest;  // path of the manifest file
  ManifestFormat format = ManifestFormat::kAuto;
  std::string base_url;   // the collection's HTTPS base URL
  std::string local_dir;  // get: destination, created if missing; put:
                          // source; not used by rm and stat
  std::string token;      // bearer token; empty for public collections
  // Asked once when the collection refuses the token (401): returns a
  // fresh token, or the same or an empty one when there is none. Called on
  // the transfer loop's thread; may be empty.
  std::function<std::string()> refresh_token;
  // Where the token comes from when it is renewed during the run (granted
  // to an application); when set, `token` and `refresh_token` are not
  // used: new requests carry its current token, and a refusal asks it for
  // a fresh one.
  std::shared_ptr<TokenSource> token_source;
  bool insecure = false;  // do not verify the collection's certificate
  std::string ca_file;    // CA bundle for the collection; empty: system's
  std::string report;     // JSON lines report file; empty: none

  SyncLevel sync = SyncLevel::kNone;  // get and put only
  bool strict = false;  // rm: a file that is already absent has failed

  int streams = 64;  // transfers in flight at once
  // Requests that may start in any one second, spaced evenly; 0: no limit.
  double max_requests = 0;
  // Bytes per second, sent and received together; 0: no limit.
  double max_rate = 0;
  int connections = 4;  // connections to the collection, at most
  // Downloads of at least `split_above` bytes (by the manifest's size) are
  // fetched as ranges of `range_size` bytes, up to `streams_per_file` at
  // once; split_above 0: never.
  uint64_t split_above = 64ull << 20;
  uint64_t range_size = 16ull << 20;
  int streams_per_file = 4;
  // Write ranges with O_DIRECT, past the page cache. The file is then
  // read back from the disk to be hashed.
  bool direct_io = false;
  bool http1 = false;  // HTTP/1.1 only: one stream per connection
  RetryOptions retry;
  ProgressMode progress = ProgressMode::kAuto;  // progress line on stderr
  // Log every request's and answer's header lines at debug level, with
  // credentials redacted.
  bool trace_http = false;

  // stat: where the listing goes, one line per file; null for stdout.
  std::FILE* listing = nullptr;

  // Set (from any thread or a signal handler) to stop the run: no new
  // file starts, transfers in flight are abandoned (a download's
  // temporary file is kept and journaled so that the same command
  // continues it, an upload never completes), the report is completed.
  // Null: never.
  const std::atomic<bool>* interrupt = nullptr;

  // Where log lines go; nullptr for spdlog's default logger.
  std::shared_ptr<spdlog::logger> logger;
};

// What a run did, counted by the report.
struct RunSummary {
  Operation op = Operation::kGet;
  uint64_t files = 0;          // files the manifest names
  uint64_t ok = 0;             // done: arrived, uploaded, deleted, found
  uint64_t verified = 0;       // ok, and equal to the manifest's xxh128
  uint64_t skipped = 0;        // left alone by the sync level
  uint64_t absent = 0;         // rm, stat: not on the collection
  uint64_t failed = 0;         // attempted and given up
  uint64_t not_attempted = 0;  // never started because the run stopped
  uint64_t bytes = 0;          // bytes of the files moved
  uint64_t moved = 0;          // bytes sent or received, failed attempts too
  uint64_t retries = 0;        // attempts after a file's first
  uint64_t resumed = 0;        // downloads continued from kept bytes
  double held_seconds = 0;     // new requests held back by Retry-After
  double request_limit_seconds = 0;  // ready requests held by max_requests
  double rate_limit_seconds = 0;     // ready bytes held by max_rate
  int streams_cuts = 0;              // times the collection showed overload
  int streams_lowest = 0;            // the fewest streams in flight after a cut
  double seconds = 0;
  std::optional<Error> stopped_by;    // why the run stopped early, if it did
  std::optional<Error> report_error;  // the report could not be written

  // Every file ended as it should: done, skipped, or (rm) already absent.
  bool all_ok() const;
  // A few lines for people: counts, bytes, time, throughput.
  std::string ToText() const;
};

// Runs an operation. Returns an error, before any file is touched, when the
// run cannot start (bad options, bad manifest lines, unusable folder, a
// collection that refuses the method); otherwise ok, with per-file
// outcomes in `summary` and the report.
[[nodiscard]] Status Run(const RunOptions& options, RunSummary* summary);

}  // namespace ferry
