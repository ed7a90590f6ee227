// Writes downloaded files through io_uring without ever blocking the
// transfer loop on the disk, and without a half-written file ever carrying
// its final name.
//
// A file's bytes go to a hidden temporary file beside the destination
// (".NAME.ferry-part"), at explicit offsets. When the transfer is finished
// and committed, the temporary file is closed and renamed to its final
// name; when it is abandoned, it is closed and removed; when it is kept,
// it is closed and stays, so that a later attempt can continue it from
// its length. A small file whose
// bytes all fit in one buffer costs one submission: open, write, close and
// rename go to the kernel as one linked chain and run on its workers.
//
// Not thread-safe: owned by the transfer loop's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "disk/buffer_pool.h"
#include "disk/ring.h"
#include "ferry/error.h"

namespace ferry {

struct DiskOptions {
  size_t buffer_size = 128 * 1024;  // the largest buffer
  size_t buffer_budget = 4 << 20;   // busy bytes before no new file starts
  size_t buffer_limit = 8 << 20;    // busy bytes before Append waits
  unsigned ring_entries = 1024;
  unsigned file_slots = 2048;  // files open at once
};

// The hidden temporary file that holds a download to `final_path` until
// it is complete.
std::string PartPathFor(const std::string& final_path);

class DiskWriter {
 public:
  using FileId = uint32_t;
  enum class Ending {
    kCommit,   // give the file its final name
    kAbandon,  // remove the temporary file
    kKeep,     // close the temporary file and leave it for a later attempt
  };
  // Called once per file when its last operation has completed: ok when
  // a committed file now has its final name, or when an abandoned one was
  // cleaned up without trouble; else the local error that happened.
  using DoneFn = std::function<void(uint64_t cookie, const Status& status)>;

  [[nodiscard]] static Status Create(const DiskOptions& options,
                                     std::unique_ptr<DiskWriter>* out);
  ~DiskWriter();

  // Starts a file to be written at `final_path`. Creates missing parent
  // directories. With `resume_at` > 0 the temporary file that an earlier
  // attempt kept is cut to that length and continued; otherwise whatever
  // has the temporary name is replaced. `cookie` comes back in the DoneFn.
  [[nodiscard]] Status Begin(const std::string& final_path, uint64_t resume_at,
                             uint64_t cookie, FileId* id);

  // Starts writing one range of a file that several transfers fill at
  // once, from `offset` on. Its temporary file must exist already (see
  // range_file.h); it is neither cut nor removed here: the range ends
  // closed, whether kept or abandoned, and kCommit is not allowed.
  //
  // With `direct`, the range is written with O_DIRECT, past the page
  // cache (where the file system refuses it, through the cache after
  // all). `offset` must then be a multiple of kDirectAlign, and a last
  // buffer that is not is written padded with zeros to the next multiple:
  // the file may grow past its size, and must be cut to it (TrimRangeFile).
  static constexpr uint64_t kDirectAlign = 4096;
  [[nodiscard]] Status BeginRange(const std::string& final_path,
                                  uint64_t offset, bool direct, uint64_t cookie,
                                  FileId* id);

  // Changes the cookie that the DoneFn will receive for this file.
  void SetCookie(FileId id, uint64_t cookie);

  // The file (or range) is expected to end at byte `end`: its buffers are
  // sized to what is left, so that a small file does not hold a large
  // buffer. Bytes past it are still written.
  void ExpectEnd(FileId id, uint64_t end);

  // Appends received bytes; waits for the disk when more than
  // buffer_limit bytes of buffers are busy. Errors surface in the DoneFn;
  // failed() tells the transport early so that it can stop the transfer.
  void Append(FileId id, const char* data, size_t size);
  bool failed(FileId id) const;

  // The length from which every byte has reached the file system (not
  // necessarily stable storage): what a later attempt could continue from.
  uint64_t written(FileId id) const;

  // No more bytes will come; the file ends as `ending` says. The id is
  // invalid afterwards.
  void Finish(FileId id, Ending ending);

  // Sends prepared operations to the kernel. The loop calls this once per
  // turn, so that many files' operations go in one system call.
  void Submit();

  // Handles completed operations; calls `done` for files that are done.
  void Poll(const DoneFn& done);

  int event_fd() const { return ring_->event_fd(); }
  bool over_budget() const { return pool_.over_budget(); }
  bool idle() const { return active_files_ == 0; }

 private:
  struct File;
  struct Op;
  enum class OpKind : uint8_t { kOpen, kWrite, kClose, kRename, kUnlink };

  DiskWriter(const DiskOptions& options, std::unique_ptr<Ring> ring);

  Status MakeParents(const std::string& final_path);
  File& NewFile(const std::string& final_path, uint64_t offset, uint64_t cookie,
                FileId* id);
  void Advance(FileId id);
  void AdvanceCommit(FileId id, File& f);
  void AdvanceAbort(FileId id, File& f);
  void Complete(FileId id, File& f);
  void QueueCurrentBuffer(File& f);
  void DropPending(File& f);

  Op* NewOp(FileId id, OpKind kind);
  io_uring_sqe* PrepareOpen(FileId id, File& f, bool link);
  void PrepareWrite(FileId id, File& f, Op* op, bool link);
  void PrepareClose(FileId id, File& f, bool link);
  void PrepareRename(FileId id, File& f);
  void PrepareUnlink(FileId id, File& f);
  void DrainCompletions();
  void OnCompletion(Op* op, int res);

  DiskOptions options_;
  std::unique_ptr<Ring> ring_;
  BufferPool pool_;

  std::vector<File> files_;         // indexed by FileId
  std::vector<FileId> free_files_;  // ids ready for reuse
  std::vector<Op*> free_ops_;       // operation records ready for reuse
  std::vector<std::unique_ptr<Op>> all_ops_;
  std::vector<FileId> slot_waiters_;  // files waiting for a free slot
  std::vector<std::pair<uint64_t, Status>> finished_;
  size_t active_files_ = 0;
  size_t ops_in_flight_ = 0;  // sent to the kernel, not completed

  // Directories known to exist, so that a tree of many files in few
  // directories costs one mkdir per directory. Cleared when large.
  std::unordered_set<std::string> known_dirs_;
};

}  // namespace ferry
