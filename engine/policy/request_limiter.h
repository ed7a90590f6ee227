// The run's ceiling on requests per second (--max-requests): at most that
// many requests start in any window of one second, and they start evenly
// spaced rather than in bursts. Pure: it does no I/O and never sleeps; the
// caller passes the current time and waits until NextStart() itself.
#pragma once

#include <cstddef>
#include <vector>

#include "ferry/retry_policy.h"

namespace ferry {

class RequestLimiter {
 public:
  // `per_second` <= 0: no limit.
  explicit RequestLimiter(double per_second);

  bool limited() const { return capacity_ > 0; }

  // Whether a request may start now. A refusal marks the moment from which
  // the run is held back, until the next start.
  bool MayStart(Clock::time_point now);
  // The earliest moment the next request may start.
  Clock::time_point NextStart() const;
  // A request started now.
  void Started(Clock::time_point now);

  // How long requests that were ready waited for the limit.
  Clock::duration held() const { return held_; }

 private:
  size_t capacity_ = 0;                    // starts allowed in one second
  Clock::duration spacing_{};              // between two starts
  std::vector<Clock::time_point> starts_;  // the last `capacity_`, a ring
  size_t next_ = 0;                        // the oldest of them, replaced next
  size_t count_ = 0;
  Clock::time_point last_;
  bool waiting_ = false;
  Clock::time_point waiting_since_;
  Clock::duration held_{};
};

}  // namespace ferry
