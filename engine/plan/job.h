// A job: one file to handle, as the planner hands it to the transfer loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ferry/digest.h"
#include "ferry/error.h"
#include "ferry/retry_policy.h"

namespace ferry {

// The request a job needs next. A file that a sync level must look at
// first starts with kHead (or kHashRemote) and moves on to its transfer
// when the answer says it has to.
enum class Step : uint8_t {
  kHead,        // HEAD: size and type, or whether it exists
  kHashRemote,  // GET, hashing the body without keeping it
  kGet,         // GET into the local file
  kPut,         // PUT the local file
  kDelete,      // DELETE
};

struct Job {
  std::string path;   // the manifest's path, for messages and the report
  std::string url;    // the file's URL on the collection
  std::string local;  // get: the final local path; put: the source file
  std::optional<uint64_t> size;     // from the manifest
  std::optional<Digest128> xxh128;  // from the manifest
  uint64_t line = 0;                // manifest line, for messages
  Step step = Step::kGet;

  // The local side, as the planner found it (get: destination, put:
  // source), for sync decisions and the upload's size.
  bool local_exists = false;
  uint64_t local_size = 0;
  int64_t local_mtime = 0;  // seconds since the epoch

  // Set by the planner when the job needs no request: the file is left
  // alone for this reason, or it failed before any request.
  std::string skip_reason;
  std::optional<Error> error;

  // Bytes of a download that an earlier attempt (or run) kept in the
  // temporary file, which the next GET continues with a range request.
  struct Kept {
    uint64_t length = 0;
    uint64_t total = 0;  // the whole file's size as then announced; 0 unknown
    std::string etag;    // sent as If-Range, so a changed file starts over
    std::shared_ptr<const Hasher> hash;  // the digest state after `length`
  };
  std::optional<Kept> kept;

  int attempts = 0;          // attempts of the current step started so far
  int fruitless = 0;         // of these, failed ones that moved nothing forward
  bool failing = false;      // a retry has been scheduled for this file
  int token_generation = 0;  // of the token its last attempt sent
  std::optional<Error> last_error;  // of its last failed attempt
  Clock::time_point first_start;
  bool end_of_plan = false;  // marks the end of the manifest; no file

  bool download = false;  // the run writes local files

  // A download large enough to be fetched as ranges on several streams at
  // once. The loop splits it only when few requests are in flight and the
  // collection honours ranges; the ranges are jobs of their own, with
  // `split` naming the file they belong to.
  bool in_ranges = false;
  static constexpr uint64_t kNoSplit = ~uint64_t{0};
  uint64_t split = kNoSplit;
  uint64_t range_first = 0;
  uint64_t range_length = 0;
  bool is_range() const { return split != kNoSplit; }

  // Two jobs with the same key must not run at once: downloads to one
  // local file, or requests for one URL.
  const std::string& key() const { return download ? local : url; }
};

}  // namespace ferry
