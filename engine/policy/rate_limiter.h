// The run's ceiling on bytes per second (--max-rate): one token bucket
// shared by every stream and both directions. Bytes moved take tokens,
// which come back at the limit's pace; while the bucket is empty, no
// stream may move more, so over any stretch of time the run averages at
// most the limit plus one bucket (a twentieth of a second's worth). A
// transfer may take more than the bucket holds in one go (curl hands over
// up to a buffer at a time); the debt is paid by waiting. Pure: no I/O,
// no sleeping; the caller passes the time and waits for NextMove() itself.
#pragma once

#include <cstdint>

#include "ferry/retry_policy.h"

namespace ferry {

class RateLimiter {
 public:
  // `bytes_per_second` <= 0: no limit.
  explicit RateLimiter(double bytes_per_second);

  bool limited() const { return rate_ > 0; }
  double burst() const { return burst_; }

  // Whether bytes may move now. A refusal marks the moment from which the
  // run is held back, until bytes may move again.
  bool MayMove(Clock::time_point now);
  // `bytes` moved now.
  void Moved(uint64_t bytes, Clock::time_point now);
  // The earliest moment bytes may move again; not later than now when
  // they may move now.
  Clock::time_point NextMove() const;

  // How long the run had bytes ready that the limit held back.
  Clock::duration held() const { return held_; }

 private:
  void Refill(Clock::time_point now);

  double rate_ = 0;    // bytes per second
  double burst_ = 0;   // the bucket's size in bytes
  double tokens_ = 0;  // may be negative: a debt
  Clock::time_point last_{};
  bool started_ = false;
  bool waiting_ = false;
  Clock::time_point waiting_since_;
  Clock::duration held_{};
};

}  // namespace ferry
