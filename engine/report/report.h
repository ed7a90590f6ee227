// Accounting for a run: per-file results as JSON lines, the counts of the
// summary, and the progress line. Fed by the transfer loop; never reaches
// back into it. Not thread-safe: used on the loop's thread only.
#pragma once

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include "ferry/digest.h"
#include "ferry/error.h"
#include "ferry/run.h"

namespace ferry {

enum class Outcome {
  kOk,       // done: arrived, uploaded, deleted, or found
  kSkipped,  // left alone by the sync level
  kAbsent,   // rm, stat: the collection has no such file
  kFailed,
};

struct FileResult {
  const std::string* path = nullptr;
  Outcome outcome = Outcome::kOk;
  const std::string* reason = nullptr;  // why a file was skipped
  uint64_t bytes = 0;
  std::optional<Digest128> xxh128;  // of the bytes that arrived
  bool verified = false;            // equal to the manifest's digest
  long http_status = 0;
  int attempts = 0;
  double seconds = 0;
  const Error* error = nullptr;  // set when the file failed
  // The last failed attempt's error, for a file that got there in the end.
  const Error* last_error = nullptr;
  // stat: what the collection said of the file.
  std::optional<uint64_t> remote_size;
  std::string content_type;
};

class Report {
 public:
  // Opens the JSON lines file when `path` is not empty. A stat run lists
  // every file on `listing` as well.
  [[nodiscard]] Status Open(Operation op, const std::string& path,
                            ProgressMode progress, uint64_t files,
                            std::FILE* listing);

  void FileDone(const FileResult& result);
  void AddMoved(uint64_t bytes) { moved_ += bytes; }
  uint64_t moved() const { return moved_; }
  void AddRetry() { ++summary_.retries; }
  void AddResumed() { ++summary_.resumed; }
  // How long the run was held back by servers' Retry-After, by
  // --max-requests and by --max-rate.
  void SetHeld(std::chrono::steady_clock::duration by_servers,
               std::chrono::steady_clock::duration by_request_limit,
               std::chrono::steady_clock::duration by_rate_limit) {
    auto seconds = [](auto d) {
      return std::chrono::duration<double>(d).count();
    };
    summary_.held_seconds = seconds(by_servers);
    summary_.request_limit_seconds = seconds(by_request_limit);
    summary_.rate_limit_seconds = seconds(by_rate_limit);
  }
  // The fewest transfers the run kept in flight after the collection
  // showed overload, and how often it did.
  void SetStreamsCut(int lowest, int cuts) {
    summary_.streams_lowest = lowest;
    summary_.streams_cuts = cuts;
  }
  void StopRun(const Error& error);

  // Prints the progress line when it is due.
  void Tick(std::chrono::steady_clock::time_point now);

  // Ends the progress line and fills in what the loop could not count.
  RunSummary Finish();

 private:
  void PrintProgress(std::chrono::steady_clock::time_point now);

  RunSummary summary_;
  uint64_t moved_ = 0;  // every byte sent or received, failed attempts too
  std::FILE* listing_ = nullptr;
  std::string report_path_;
  std::ofstream out_;
  bool progress_ = false;
  bool tty_ = false;
  bool progress_shown_ = false;
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point next_progress_ = start_;
  std::chrono::steady_clock::duration progress_every_;
};

}  // namespace ferry
