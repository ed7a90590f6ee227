#include "disk/buffer_pool.h"

#include <cstdlib>
#include <new>

namespace ferry {
namespace {
constexpr size_t kAlignment = 4096;
}

BufferPool::BufferPool(size_t buffer_size, size_t budget)
    : buffer_size_((buffer_size + kAlignment - 1) / kAlignment * kAlignment),
      budget_(budget) {}

BufferPool::~BufferPool() {
  for (char* b : free_) std::free(b);
}

char* BufferPool::Acquire() {
  ++busy_;
  if (!free_.empty()) {
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void* b = std::aligned_alloc(kAlignment, buffer_size_);
  if (b == nullptr) throw std::bad_alloc();
  return static_cast<char*>(b);
}

void BufferPool::Release(char* buffer) {
  --busy_;
  free_.push_back(buffer);
}

}  // namespace ferry
