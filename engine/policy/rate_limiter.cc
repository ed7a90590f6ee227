#include "policy/rate_limiter.h"

#include <algorithm>

namespace ferry {
namespace {

// A twentieth of a second's worth, within bounds that keep a tiny limit
// from refusing every buffer and a huge one from bursting for long.
constexpr double kBurstSeconds = 0.05;
constexpr double kMinBurst = 16 * 1024;
constexpr double kMaxBurst = 8 << 20;

}  // namespace

RateLimiter::RateLimiter(double bytes_per_second) {
  if (bytes_per_second <= 0) return;
  rate_ = bytes_per_second;
  burst_ = std::clamp(rate_ * kBurstSeconds, kMinBurst, kMaxBurst);
  tokens_ = burst_;
}

void RateLimiter::Refill(Clock::time_point now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  if (now <= last_) return;
  tokens_ = std::min(
      burst_,
      tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
  last_ = now;
}

bool RateLimiter::MayMove(Clock::time_point now) {
  if (rate_ <= 0) return true;
  Refill(now);
  if (tokens_ > 0) {
    if (waiting_) {
      held_ += now - waiting_since_;
      waiting_ = false;
    }
    return true;
  }
  if (!waiting_) {
    waiting_ = true;
    waiting_since_ = now;
  }
  return false;
}

void RateLimiter::Moved(uint64_t bytes, Clock::time_point now) {
  if (rate_ <= 0) return;
  Refill(now);
  tokens_ -= static_cast<double>(bytes);
}

Clock::time_point RateLimiter::NextMove() const {
  if (rate_ <= 0 || tokens_ > 0) return last_;
  // The debt paid, and one byte more.
  auto wait = std::chrono::duration<double>((1 - tokens_) / rate_);
  return last_ + std::chrono::ceil<Clock::duration>(wait);
}

}  // namespace ferry
