// The progress line of `manifest` and `verify` on standard error: files,
// GiB and GiB/s so far, redrawn at most once a second, erased at the end.
// Fed counts by the consumer of the hashing pipeline. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace ferry {

class TreeProgress {
 public:
  explicit TreeProgress(bool enabled) : enabled_(enabled) {}
  ~TreeProgress() { Finish(); }
  TreeProgress(const TreeProgress&) = delete;
  TreeProgress& operator=(const TreeProgress&) = delete;

  void Add(uint64_t bytes);
  // Erases the line, if one was drawn.
  void Finish();

 private:
  using Clock = std::chrono::steady_clock;

  bool enabled_;
  bool shown_ = false;
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
  Clock::time_point start_ = Clock::now();
  Clock::time_point next_ = start_ + std::chrono::seconds(1);
};

// Bytes per second as GiB/s, for summaries.
double GibPerSecond(uint64_t bytes, double seconds);

}  // namespace ferry
