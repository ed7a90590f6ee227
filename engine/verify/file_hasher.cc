#include "verify/file_hasher.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace ferry {
namespace {

constexpr size_t kAlignment = 4096;

// Closes a descriptor when the scope ends.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

struct FileHasher::Ring {
  io_uring ring{};
  bool ready = false;          // set up, to be torn down
  bool fixed_buffers = false;  // buffers registered: read_fixed, no pinning

  ~Ring() {
    if (ready) io_uring_queue_exit(&ring);
  }

  // A ring for `buffers`, or null with the reason io_uring is unavailable.
  static std::unique_ptr<Ring> Create(char* buffers, std::string* reason) {
    auto ring = std::make_unique<Ring>();
    // Room to resubmit short reads while every buffer is still queued.
    int rc = io_uring_queue_init(2 * kBuffers, &ring->ring, 0);
    if (rc < 0) {
      *reason = std::strerror(-rc);
      return nullptr;
    }
    ring->ready = true;
    iovec iov[kBuffers];
    for (unsigned i = 0; i < kBuffers; ++i) {
      iov[i] = {buffers + size_t{i} * kChunk, kChunk};
    }
    // Registration may be refused by RLIMIT_MEMLOCK on older kernels;
    // plain reads work then, pinning the pages on each read.
    ring->fixed_buffers =
        io_uring_register_buffers(&ring->ring, iov, kBuffers) == 0;
    return ring;
  }
};

FileHasher::FileHasher(bool try_io_uring) {
  void* memory = std::aligned_alloc(kAlignment, size_t{kBuffers} * kChunk);
  if (memory == nullptr) throw std::bad_alloc();
  buffers_ = static_cast<char*>(memory);
  if (try_io_uring) {
    ring_ = Ring::Create(buffers_, &fallback_reason_);
  } else {
    fallback_reason_ = "io_uring not tried";
  }
}

FileHasher::~FileHasher() {
  ring_.reset();  // before the buffers the kernel may have registered
  std::free(buffers_);
}

void FileHasher::Hash(const char* path, bool follow, bool digest,
                      std::optional<uint64_t> only_if_size, HashedFile* out) {
  *out = HashedFile{};
  // O_NONBLOCK: opening a fifo must not wait for a writer.
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW);
  int fd = ::open(path, flags);
  if (fd < 0) {
    out->err = errno;
    out->step = "open";
    return;
  }
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    out->err = errno;
    out->step = "stat";
    return;
  }
  out->type = st.st_mode & S_IFMT;
  out->regular = S_ISREG(st.st_mode);
  out->size_at_open = static_cast<uint64_t>(st.st_size);
  out->size = out->size_at_open;
  if (!out->regular || !digest) return;
  if (only_if_size && *only_if_size != out->size_at_open) return;

  // Reads of a file marked non-blocking would come back with EAGAIN
  // instead of waiting for the disk.
  if (::fcntl(fd, F_SETFL, 0) != 0) {
    out->err = errno;
    out->step = "fcntl";
    return;
  }
  if (out->size_at_open > 2 * kChunk) {
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  hasher_.Reset();
  out->size = 0;
  if (ring_) {
    ReadWithRing(fd, out->size_at_open, out);
  } else {
    ReadWithPread(fd, out->size_at_open, out);
  }
  if (out->err != 0) return;
  out->digest = hasher_.Final();
  out->hashed = true;
}

bool FileHasher::HashPrefix(const char* path, uint64_t length, Hasher* state) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) < length) {
    return false;
  }
  HashedFile out;
  hasher_.Reset();
  if (ring_) {
    ReadWithRing(fd, length, &out);
  } else {
    ReadWithPread(fd, length, &out);
  }
  if (out.err != 0 || out.size != length) return false;
  state->CopyFrom(hasher_);
  return true;
}

void FileHasher::ReadWithRing(int fd, uint64_t size, HashedFile* out) {
  const uint64_t count = (size + kChunk - 1) / kChunk;
  uint64_t issued = 0;  // chunks whose reads were started
  uint64_t hashed = 0;  // chunks fed to the hasher, in order
  bool ended = false;   // the file ended early, or a read failed
  for (;;) {
    // Keep the window of buffers busy with the next chunks.
    while (!ended && issued < count && issued - hashed < kBuffers) {
      uint64_t offset = issued * kChunk;
      auto length =
          static_cast<uint32_t>(std::min<uint64_t>(kChunk, size - offset));
      auto slot = static_cast<unsigned>(issued % kBuffers);
      chunks_[slot] = Chunk{offset, length};
      Submit(fd, slot);
      ++issued;
    }
    if (in_flight_ == 0 && (ended || hashed == count)) break;

    if (int err = Reap(fd); err != 0 && !ended) {
      out->err = err;
      out->step = "read";
      ended = true;
    }

    // Hash finished chunks in file order, up to the one the file ended in.
    while (!ended && hashed < issued && !chunks_[hashed % kBuffers].busy) {
      const Chunk& c = chunks_[hashed % kBuffers];
      hasher_.Update(buffers_ + (hashed % kBuffers) * size_t{kChunk}, c.done);
      out->size += c.done;
      ++hashed;
      ended = c.eof;
    }
  }
  if (ring_failed_) AbandonRing();
}

void FileHasher::Submit(int fd, unsigned slot) {
  Chunk& c = chunks_[slot];
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) {
    // The queue holds twice the buffers, so this only happens when earlier
    // entries were not taken yet; hand them over and try again.
    (void)io_uring_submit(&ring_->ring);
    sqe = io_uring_get_sqe(&ring_->ring);
  }
  char* buffer = buffers_ + size_t{slot} * kChunk + c.done;
  unsigned length = c.length - c.done;
  uint64_t offset = c.offset + c.done;
  if (ring_->fixed_buffers) {
    io_uring_prep_read_fixed(sqe, fd, buffer, length, offset,
                             static_cast<int>(slot));
  } else {
    io_uring_prep_read(sqe, fd, buffer, length, offset);
  }
  io_uring_sqe_set_data64(sqe, slot);
  c.busy = true;
  ++in_flight_;
}

int FileHasher::Reap(int fd) {
  int rc;
  do {
    rc = io_uring_submit_and_wait(&ring_->ring, 1);
  } while (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
  if (rc < 0) {
    // The kernel took none of the reads and may still own the buffers of
    // the ones in flight; nothing more can be known about them.
    ring_failed_ = true;
    in_flight_ = 0;
    return -rc;
  }

  int failure = 0;
  io_uring_cqe* cqe;
  while (io_uring_peek_cqe(&ring_->ring, &cqe) == 0) {
    auto slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(&ring_->ring, cqe);
    Chunk& c = chunks_[slot];
    --in_flight_;
    c.busy = false;
    if (res == -EAGAIN || res == -EINTR) {
      Submit(fd, slot);
    } else if (res < 0) {
      failure = -res;
    } else if (res == 0) {
      c.eof = true;
    } else {
      c.done += static_cast<uint32_t>(res);
      // A short read is not the end of the file: ask for the rest.
      if (c.done < c.length) Submit(fd, slot);
    }
  }
  return failure;
}

void FileHasher::AbandonRing() {
  // The kernel may still write into the old buffers, so they are left to
  // it rather than freed; from now on this thread reads with pread.
  fallback_reason_ = "the ring stopped answering";
  ring_.release();  // NOLINT: deliberately leaked with its buffers
  void* memory = std::aligned_alloc(kAlignment, size_t{kBuffers} * kChunk);
  if (memory == nullptr) throw std::bad_alloc();
  buffers_ = static_cast<char*>(memory);
  ring_failed_ = false;
}

void FileHasher::ReadWithPread(int fd, uint64_t size, HashedFile* out) {
  uint64_t offset = 0;
  while (offset < size) {
    size_t want =
        static_cast<size_t>(std::min<uint64_t>(kChunk, size - offset));
    ssize_t n = ::pread(fd, buffers_, want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out->err = errno;
      out->step = "read";
      return;
    }
    if (n == 0) break;
    hasher_.Update(buffers_, static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  out->size = offset;
}

}  // namespace ferry
