// How many transfers the run keeps in flight: it starts at the ceiling
// (--streams), halves when the collection shows it is overloaded (429, 503,
// a timeout), at most once a second, and then grows by one stream a second
// while throughput does not fall. A step that made throughput fall is
// taken back, and growth waits a few seconds. Pure: the caller passes the time
// and what moved.
#pragma once

#include <cstdint>

#include "ferry/retry_policy.h"

namespace ferry {

class Concurrency {
 public:
  explicit Concurrency(int ceiling);

  // Transfers that may be in flight now: between 1 and the ceiling.
  int limit() const { return limit_; }
  int ceiling() const { return ceiling_; }
  // The lowest limit of the run, and how often it was cut.
  int lowest() const { return lowest_; }
  int cuts() const { return cuts_; }

  // A request failed in a way that says the collection is overloaded.
  void Overloaded(Clock::time_point now);
  // Called often (every turn of the loop is fine) with what the run has
  // moved so far: bytes, and requests ended. Acts once a second.
  void Tick(Clock::time_point now, uint64_t bytes, uint64_t requests);

 private:
  int ceiling_;
  int limit_;
  int lowest_;
  int cuts_ = 0;
  bool started_ = false;
  Clock::time_point last_cut_{};
  Clock::time_point interval_start_{};
  uint64_t bytes_at_start_ = 0;
  uint64_t requests_at_start_ = 0;
  double last_bytes_rate_ = 0;
  double last_request_rate_ = 0;
  bool grew_last_ = false;  // the last interval ended with a step up
  int hold_ = 0;            // intervals left without a step up
};

}  // namespace ferry
