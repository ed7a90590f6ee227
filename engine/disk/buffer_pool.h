// Page-aligned buffers that carry bytes between the network and the ring.
// A buffer is busy from Acquire() until the operation that carries it
// completes; then it goes back to the pool and is reused, so steady-state
// transfers allocate nothing.
//
// Buffers come in a few sizes, 4 KiB times a power of two up to the
// pool's largest: a small file takes a buffer of about its own size, so
// that many small files in flight do not each pin a large buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry {

class BufferPool {
 public:
  static constexpr size_t kSmallest = 4096;

  // `largest` is the size of the largest buffer (rounded up to whole
  // pages); `budget` is how many bytes of buffers may be busy before the
  // pool counts as over budget, when the transfer loop stops admitting
  // new files.
  BufferPool(size_t largest, size_t budget);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  size_t largest() const { return sizes_.back(); }

  // The size of the smallest buffer that holds `want` bytes, or of the
  // largest when none does.
  size_t SizeFor(uint64_t want) const;

  // A buffer of `size`, which SizeFor() gave. Never fails for lack of
  // budget: bytes that have arrived must go somewhere; admission control
  // keeps the overshoot small.
  char* Acquire(size_t size);
  // Gives back a buffer that Acquire(`size`) returned.
  void Release(char* buffer, size_t size);

  bool over_budget() const { return busy_ >= budget_; }
  size_t busy() const { return busy_; }  // bytes

 private:
  size_t ClassOf(size_t size) const;

  std::vector<size_t> sizes_;  // of each class, ascending
  // Free buffers of each class, most recently released last: still warm.
  std::vector<std::vector<char*>> free_;
  size_t budget_;
  size_t busy_ = 0;
};

}  // namespace ferry
