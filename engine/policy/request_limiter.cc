#include "policy/request_limiter.h"

#include <algorithm>
#include <cmath>

namespace ferry {

RequestLimiter::RequestLimiter(double per_second) {
  if (per_second <= 0) return;
  capacity_ = static_cast<size_t>(std::max(1.0, std::floor(per_second)));
  spacing_ = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / per_second));
  starts_.resize(capacity_);
}

Clock::time_point RequestLimiter::NextStart() const {
  if (capacity_ == 0 || count_ == 0) return Clock::time_point::min();
  Clock::time_point next = last_ + spacing_;
  // A full second since the start `capacity_` starts ago: the window that
  // ends now holds fewer than `capacity_` starts.
  if (count_ == capacity_) {
    next = std::max(next, starts_[next_] + std::chrono::seconds(1));
  }
  return next;
}

bool RequestLimiter::MayStart(Clock::time_point now) {
  if (capacity_ == 0 || now >= NextStart()) return true;
  if (!waiting_) {
    waiting_ = true;
    waiting_since_ = now;
  }
  return false;
}

void RequestLimiter::Started(Clock::time_point now) {
  if (capacity_ == 0) return;
  if (waiting_) {
    held_ += now - waiting_since_;
    waiting_ = false;
  }
  starts_[next_] = now;
  next_ = (next_ + 1) % capacity_;
  count_ = std::min(count_ + 1, capacity_);
  last_ = now;
}

}  // namespace ferry
