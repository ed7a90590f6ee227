// Fixed-size, page-aligned buffers that carry received bytes to the ring.
// A buffer is busy from Acquire() until the write that carries it
// completes; then it goes back to the pool and is reused, so steady-state
// transfers allocate nothing.
#pragma once

#include <cstddef>
#include <vector>

namespace ferry {

class BufferPool {
 public:
  // `budget` is how many buffers may be busy before the pool counts as
  // over budget; the transfer loop stops admitting new files then.
  BufferPool(size_t buffer_size, size_t budget);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  size_t buffer_size() const { return buffer_size_; }

  // Never fails for lack of budget: bytes that have arrived must go
  // somewhere. Admission control keeps the overshoot small.
  char* Acquire();
  void Release(char* buffer);

  bool over_budget() const { return busy_ >= budget_; }
  size_t busy() const { return busy_; }

 private:
  size_t buffer_size_;
  size_t budget_;
  size_t busy_ = 0;
  std::vector<char*> free_;  // most recently released last: still warm
};

}  // namespace ferry
