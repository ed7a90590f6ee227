#include "verify/tree_progress.h"

#include <cstdio>

namespace ferry {
namespace {

constexpr double kGib = 1024.0 * 1024.0 * 1024.0;

}  // namespace

double GibPerSecond(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / kGib / seconds : 0;
}

void TreeProgress::Add(uint64_t bytes) {
  ++files_;
  bytes_ += bytes;
  if (!enabled_) return;
  Clock::time_point now = Clock::now();
  if (now < next_) return;
  next_ = now + std::chrono::seconds(1);
  double seconds = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r\033[K%llu files, %.2f GiB, %.2f GiB/s",
               static_cast<unsigned long long>(files_),
               static_cast<double>(bytes_) / kGib,
               GibPerSecond(bytes_, seconds));
  std::fflush(stderr);
  shown_ = true;
}

void TreeProgress::Finish() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace ferry
