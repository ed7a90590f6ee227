#include "disk/ring.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

namespace ferry {
namespace {

// Buffered writes and opens may be handed to the kernel's io-wq workers;
// without a cap a burst of them can start thousands of threads.
constexpr unsigned kMaxBoundedWorkers = 8;
constexpr unsigned kMaxUnboundedWorkers = 8;

}  // namespace

Status Ring::Create(unsigned entries, unsigned file_slots,
                    std::unique_ptr<Ring>* out) {
  std::unique_ptr<Ring> ring(new Ring);
  io_uring_params params{};
  // Completions of work done by io-wq reach this thread at its next system
  // call (the loop makes them all the time, and a wait on the ring's
  // eventfd is woken) instead of by an interrupt of whatever it is doing.
  // Linux 5.19, which ferry needs anyway, has the flag.
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
  if (rc < 0) {
    return Error(ErrorCode::kLocalIo, RetryClass::kStopRun,
                 fmt::format("io_uring is not available here ({}); ferry "
                             "needs Linux 5.19 or newer with io_uring "
                             "allowed (see kernel.io_uring_disabled and the "
                             "container's seccomp policy)",
                             std::strerror(-rc)));
  }
  ring->ready_ = true;
  rc = io_uring_register_files_sparse(&ring->ring_, file_slots);
  if (rc < 0) {
    return Error(ErrorCode::kLocalIo, RetryClass::kStopRun,
                 fmt::format("io_uring cannot register {} file slots: {}",
                             file_slots, std::strerror(-rc)));
  }
  ring->file_slots_ = file_slots;
  for (int slot = static_cast<int>(file_slots) - 1; slot >= 0; --slot) {
    ring->free_slots_.push_back(slot);
  }
  unsigned workers[2] = {kMaxBoundedWorkers, kMaxUnboundedWorkers};
  (void)io_uring_register_iowq_max_workers(&ring->ring_, workers);

  ring->event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ring->event_fd_ < 0 ||
      io_uring_register_eventfd(&ring->ring_, ring->event_fd_) < 0) {
    return ErrorFromErrno(errno, "io_uring eventfd");
  }
  *out = std::move(ring);
  return {};
}

Ring::~Ring() {
  if (ready_) io_uring_queue_exit(&ring_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

int Ring::TakeSlot() {
  if (free_slots_.empty()) return -1;
  int slot = free_slots_.back();
  free_slots_.pop_back();
  return slot;
}

void Ring::Reserve(unsigned count) {
  if (io_uring_sq_space_left(&ring_) < count) Submit();
}

io_uring_sqe* Ring::Sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    Submit();
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Ring::Submit() {
  // EINTR and EBUSY (completion queue momentarily full) leave the entries
  // queued; the next call submits them.
  (void)io_uring_submit(&ring_);
}

void Ring::SubmitAndWait() { (void)io_uring_submit_and_wait(&ring_, 1); }

}  // namespace ferry
