// The one place that decides what follows a failed attempt: give up, try
// again (when, and from which byte), refresh the token, or stop the run.
// It also holds the run-wide brakes that failures apply: a server's
// Retry-After holds back every new request, not only the file's, and
// while too many files are failing at once no new file starts.
//
// Pure: it does no I/O and never sleeps; the caller passes the current
// time and sets a timer for the answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

#include "ferry/error.h"

namespace ferry {

using Clock = std::chrono::steady_clock;

struct RetryOptions {
  int max_attempts = 5;  // attempts per file, the first one included
  std::chrono::milliseconds base_delay{250};
  std::chrono::milliseconds max_delay{30000};
  // Files waiting for or running a retry at once; while this many are
  // failing, no new file starts.
  int max_failing = 16;
  // A transfer that moves no byte for this long has stalled.
  std::chrono::seconds stall{60};
  // The whole run stops (leaving downloads in flight resumable) once this
  // much time has passed; zero: no limit.
  std::chrono::seconds deadline{0};
};

// What the caller knows about the attempt that just failed.
struct FailedAttempt {
  int attempt = 1;  // its number, 1-based
  // Of these, the attempts that failed without moving a download forward
  // (this one included); only they count against max_attempts, up to ten
  // times as many attempts in all.
  int fruitless = 1;
  uint64_t kept_bytes = 0;   // good bytes kept on disk that a retry may
                             // continue from (downloads only)
  bool resumed = false;      // the attempt itself continued earlier bytes
  int token_generation = 0;  // of the token the attempt sent
};

struct RetryDecision {
  enum Action {
    kGiveUp,        // the file has failed
    kRetry,         // try again at `not_before`, from `resume_from`
    kRefreshToken,  // get a fresh token, then try again at once
    kStopRun,       // no other file can succeed either
  };
  Action action = kGiveUp;
  Clock::time_point not_before;
  uint64_t resume_from = 0;  // 0: start over
};

class RetryPolicy {
 public:
  RetryPolicy(const RetryOptions& options, uint64_t seed);

  // Classifies a failed attempt. Transient errors are retried with
  // exponential backoff and full jitter, never sooner than a server's
  // Retry-After; a download continues from its kept bytes unless those
  // bytes are suspect (a resumed file whose checksum failed starts over),
  // and keeps them for a later run when it gives up or the run stops. A
  // refused token is refreshed once per token; permanent errors give up.
  RetryDecision OnFailure(const Error& error, const FailedAttempt& attempt,
                          Clock::time_point now);

  // The token was refreshed (or could not be): attempts that sent an
  // older token are retried, not refreshed again.
  void OnTokenRefreshed(int generation) { token_generation_ = generation; }

  // Bookkeeping of failing files: a file enters when its first retry is
  // scheduled and leaves when it ends, well or not.
  void FileFailing() { ++failing_; }
  void FileRecovered() { --failing_; }

  // Whether a new file may start now, and whether a due retry may.
  bool MayStartFile(Clock::time_point now) const;
  bool MayRetry(Clock::time_point now) const { return now >= hold_until_; }
  // When the run-wide hold ends; the past when there is none.
  Clock::time_point hold_until() const { return hold_until_; }
  // How long the run has been held back by servers' Retry-After.
  Clock::duration held() const { return held_; }

  const RetryOptions& options() const { return options_; }

 private:
  RetryOptions options_;
  std::mt19937_64 random_;
  int failing_ = 0;
  int token_generation_ = 0;
  Clock::time_point hold_until_;
  Clock::duration held_{};
};

}  // namespace ferry
