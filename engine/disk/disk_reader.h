// Reads local files for upload through io_uring, ahead of the network,
// without ever blocking the transfer loop on the disk.
//
// A file is read in order, in buffers of a bounded pool, a few buffers
// ahead of the consumer. Its size and modification time are taken with
// statx before the first byte is read and again after the last one; the
// last bytes are handed out only when the two agree, so that a file that
// changed while it was being read is never sent whole. A small file costs
// one submission: statx, open, read, close and statx go to the kernel as
// one linked chain.
//
// Not thread-safe: owned by the transfer loop's thread.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "disk/buffer_pool.h"
#include "disk/ring.h"
#include "ferry/error.h"

namespace ferry {

struct ReaderOptions {
  size_t buffer_size = 256 * 1024;
  size_t buffers_per_file = 4;      // reads in flight or waiting per file
  size_t buffer_budget = 32 << 20;  // busy bytes before no new file starts
  unsigned ring_entries = 512;
  unsigned file_slots = 1024;  // files open at once
};

class DiskReader {
 public:
  using FileId = uint32_t;
  // Called when a file's state changed for its consumer: its next bytes
  // are ready, its size is known, or it failed.
  using ReadyFn = std::function<void(uint64_t cookie)>;

  [[nodiscard]] static Status Create(const ReaderOptions& options,
                                     std::unique_ptr<DiskReader>* out);
  ~DiskReader();
  DiskReader(const DiskReader&) = delete;
  DiskReader& operator=(const DiskReader&) = delete;

  // Starts reading `path`. `expected_size` is what an earlier stat said;
  // a file that small goes as one linked chain. `cookie` comes back in
  // the ReadyFn.
  FileId Begin(const std::string& path, uint64_t expected_size,
               uint64_t cookie);

  // The file's size, once the first ReadyFn call for it came (and no
  // error is set).
  std::optional<uint64_t> size(FileId id) const;
  // The error that ended reading, if any.
  const std::optional<Error>& error(FileId id) const;

  // The next bytes in order: empty while they are being read (a ReadyFn
  // call follows), after an error, and at the end of the file.
  std::string_view Peek(FileId id) const;
  // Whether the bytes Peek() returns are the file's last.
  bool PeekIsLast(FileId id) const;
  // Marks `n` bytes of Peek()'s view as used.
  void Consume(FileId id, size_t n);
  // Every byte was consumed.
  bool at_end(FileId id) const;

  // The consumer is done with the file, whether it read all of it or
  // not. The file is closed in the background; the id is invalid after.
  void End(FileId id);

  // Sends prepared operations to the kernel; once per loop turn.
  void Submit();
  // Handles completed operations and calls `ready` for the files whose
  // state changed.
  void Poll(const ReadyFn& ready);

  int event_fd() const { return ring_->event_fd(); }
  bool over_budget() const { return pool_.over_budget(); }
  bool idle() const { return open_files_ == 0; }

 private:
  struct Chunk;
  struct File;
  struct Op;
  enum class OpKind : uint8_t { kStatBefore, kOpen, kRead, kClose, kStatAfter };

  DiskReader(const ReaderOptions& options, std::unique_ptr<Ring> ring);

  void StartFile(FileId id);
  void StartSmall(FileId id, File& f);
  void StartLarge(FileId id, File& f);
  void PrepareHead(FileId id, File& f, unsigned read_flags);
  Chunk& AddChunk(File& f, uint64_t offset, size_t length);
  void IssueReads(FileId id, File& f);
  void PrepareRead(FileId id, File& f, Chunk& chunk, unsigned flags);
  void MaybeFinishReading(FileId id, File& f);
  void MaybeRelease(FileId id, File& f);
  void Fail(File& f, Error error);
  void OnCompletion(Op* op, int res);
  void CheckUnchanged(File& f);

  Op* NewOp(FileId id, OpKind kind, Chunk* chunk = nullptr);
  io_uring_sqe* Prepare(Op* op);

  ReaderOptions options_;
  std::unique_ptr<Ring> ring_;
  BufferPool pool_;

  std::vector<std::unique_ptr<File>> files_;  // indexed by FileId
  std::vector<FileId> free_files_;
  std::vector<std::unique_ptr<Op>> all_ops_;
  std::vector<Op*> free_ops_;
  std::deque<FileId> slot_waiters_;
  std::vector<uint64_t> ready_;  // cookies to announce in Poll
  size_t open_files_ = 0;        // begun and not yet released
};

}  // namespace ferry
