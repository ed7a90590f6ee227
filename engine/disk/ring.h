// A thin owner of one io_uring instance: setup with a sparse table of
// fixed file slots, an eventfd that becomes readable when completions are
// ready (so the transfer loop can poll it with its sockets), batched
// submission and draining of completions.
//
// Not thread-safe: the transfer loop's thread owns the ring.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ferry/error.h"

namespace ferry {

class Ring {
 public:
  // Sets up a ring with `entries` submission slots and `file_slots` fixed
  // file slots. Fails with a clear message where io_uring is unavailable
  // (old kernel, or forbidden by a container's seccomp or sysctl policy).
  [[nodiscard]] static Status Create(unsigned entries, unsigned file_slots,
                                     std::unique_ptr<Ring>* out);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  int event_fd() const { return event_fd_; }
  unsigned file_slots() const { return file_slots_; }

  // A free fixed file slot, or -1 when all are taken.
  int TakeSlot();
  // Returns a slot whose file is closed.
  void ReturnSlot(int slot) { free_slots_.push_back(slot); }

  // Makes room for `count` submissions that must go to the kernel in one
  // batch (a linked chain must not be split over two submissions), then
  // hands them out one by one through Sqe().
  void Reserve(unsigned count);
  io_uring_sqe* Sqe();

  // Sends everything prepared so far to the kernel.
  void Submit();
  // Submits and sleeps until at least one completion is ready.
  void SubmitAndWait();

  // Calls fn(user_data, result) for every completion that is ready and
  // clears the eventfd.
  template <class Fn>
  void Drain(Fn&& fn) {
    uint64_t ignored;
    [[maybe_unused]] auto n = ::read(event_fd_, &ignored, sizeof ignored);
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t data = cqe->user_data;
      int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      fn(data, res);
    }
  }

 private:
  Ring() = default;

  io_uring ring_{};
  bool ready_ = false;
  int event_fd_ = -1;
  unsigned file_slots_ = 0;
  std::vector<int> free_slots_;
};

}  // namespace ferry
