#include "disk/buffer_pool.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace ferry {

BufferPool::BufferPool(size_t largest, size_t budget) : budget_(budget) {
  largest =
      std::max(kSmallest, (largest + kSmallest - 1) / kSmallest * kSmallest);
  for (size_t size = kSmallest; size < largest; size *= 2) {
    sizes_.push_back(size);
  }
  sizes_.push_back(largest);
  free_.resize(sizes_.size());
}

BufferPool::~BufferPool() {
  for (auto& buffers : free_) {
    for (char* b : buffers) std::free(b);
  }
}

size_t BufferPool::SizeFor(uint64_t want) const {
  for (size_t size : sizes_) {
    if (size >= want) return size;
  }
  return sizes_.back();
}

size_t BufferPool::ClassOf(size_t size) const {
  return static_cast<size_t>(
      std::lower_bound(sizes_.begin(), sizes_.end(), size) - sizes_.begin());
}

char* BufferPool::Acquire(size_t size) {
  busy_ += size;
  std::vector<char*>& buffers = free_[ClassOf(size)];
  if (!buffers.empty()) {
    char* b = buffers.back();
    buffers.pop_back();
    return b;
  }
  void* b = std::aligned_alloc(kSmallest, size);
  if (b == nullptr) throw std::bad_alloc();
  return static_cast<char*>(b);
}

void BufferPool::Release(char* buffer, size_t size) {
  busy_ -= size;
  free_[ClassOf(size)].push_back(buffer);
}

}  // namespace ferry
