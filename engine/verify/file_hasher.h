// Hashes whole files for one thread. Each FileHasher owns a small io_uring
// ring and a fixed set of large buffers: it keeps a few reads of one file
// in flight at explicit offsets while it hashes the chunks that arrived,
// in order, so that reading and hashing overlap. Where io_uring is not
// allowed (seccomp, kernel.io_uring_disabled, an old kernel) it reads the
// same chunks with pread, one at a time.
//
// Not thread-safe: one FileHasher per thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ferry/digest.h"

namespace ferry {

// What became of one file.
struct HashedFile {
  int err = 0;                // errno of the failure; 0 when it succeeded
  const char* step = "";      // the call that failed: "open", "read", ...
  bool regular = false;       // it was a regular file (else not read)
  mode_t type = 0;            // its S_IFMT bits, when it could be opened
  uint64_t size = 0;          // bytes hashed, or its size when not hashed
  uint64_t size_at_open = 0;  // what fstat said before reading
  bool hashed = false;        // read to the end without an error
  Digest128 digest;           // of the `size` bytes read, when hashed

  // The file shrank while it was read: fewer bytes than at open.
  bool shrank() const { return size < size_at_open; }
};

class FileHasher {
 public:
  // Bytes per read and buffers per thread: up to kBuffers - 1 reads are in
  // flight while the oldest finished chunk is hashed.
  static constexpr uint32_t kChunk = 1u << 20;
  static constexpr unsigned kBuffers = 3;

  // Sets up the ring, or pread when io_uring is unavailable (then
  // `fallback_reason()` says why) or `try_io_uring` is false.
  explicit FileHasher(bool try_io_uring = true);
  ~FileHasher();
  FileHasher(const FileHasher&) = delete;
  FileHasher& operator=(const FileHasher&) = delete;

  bool uses_io_uring() const { return ring_ != nullptr; }
  const std::string& fallback_reason() const { return fallback_reason_; }

  // Opens `path` (a final symbolic link is followed only when `follow`),
  // checks that it is a regular file, and hashes it when `digest` is true
  // and its size is `only_if_size` (when given); otherwise takes only its
  // size. Never blocks on a fifo.
  void Hash(const char* path, bool follow, bool digest,
            std::optional<uint64_t> only_if_size, HashedFile* out);

  // Hashes the first `length` bytes of the regular file `path` (never
  // through a final link) and leaves the digest state in `state`, so that
  // the bytes after them can follow; false when they cannot all be read.
  bool HashPrefix(const char* path, uint64_t length, Hasher* state);

 private:
  struct Ring;
  struct Chunk {
    uint64_t offset = 0;
    uint32_t length = 0;  // bytes wanted
    uint32_t done = 0;    // bytes arrived
    bool busy = false;    // a read is in flight into its buffer
    bool eof = false;     // the file ended inside it
  };

  void ReadWithRing(int fd, uint64_t size, HashedFile* out);
  void ReadWithPread(int fd, uint64_t size, HashedFile* out);
  void Submit(int fd, unsigned slot);
  // Waits for one completion and handles every one that is ready;
  // returns an errno value that ends the file, or 0.
  int Reap(int fd);
  // After the ring failed: switch to pread for good.
  void AbandonRing();

  std::unique_ptr<Ring> ring_;  // null: pread
  std::string fallback_reason_;
  char* buffers_ = nullptr;  // kBuffers * kChunk bytes, page-aligned
  Chunk chunks_[kBuffers];
  unsigned in_flight_ = 0;    // reads queued or in the kernel
  bool ring_failed_ = false;  // io_uring_enter failed for good
  Hasher hasher_;
};

}  // namespace ferry
