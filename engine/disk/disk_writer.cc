#include "disk/disk_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ferry/digest.h"

namespace ferry {
namespace {

// Beyond this many buffered writes, a file's open goes alone instead of
// heading one long linked chain.
constexpr size_t kMaxChainedWrites = 16;
constexpr size_t kMaxKnownDirs = 100000;
constexpr size_t kMaxName = 255;  // bytes in one path segment (NAME_MAX)

}  // namespace

// ".NAME.ferry-part". A name too long to take the decoration is replaced
// by its digest. One name for every attempt: attempts at one destination
// never overlap, and a later one continues or replaces what an earlier
// one left.
std::string PartPathFor(const std::string& final_path) {
  size_t slash = final_path.rfind('/');
  size_t name_at = slash == std::string::npos ? 0 : slash + 1;
  std::string_view dir = std::string_view(final_path).substr(0, name_at);
  std::string_view name = std::string_view(final_path).substr(name_at);
  if (name.size() + sizeof(".ferry-part") > kMaxName) {
    return fmt::format("{}.{}.ferry-part", dir,
                       HashBuffer(name.data(), name.size()).ToHex());
  }
  return fmt::format("{}.{}.ferry-part", dir, name);
}

struct DiskWriter::Op {
  FileId file = 0;
  OpKind kind = OpKind::kOpen;
  char* buffer = nullptr;  // writes only: the bytes, owned by the pool
  uint32_t capacity = 0;   // the buffer's size, as the pool gave it
  uint32_t length = 0;     // bytes in the buffer
  uint32_t done = 0;       // bytes already written (short writes)
  uint64_t offset = 0;     // file offset of buffer[0]
};

struct DiskWriter::File {
  bool in_use = false;
  uint64_t cookie = 0;
  std::string temp_path;
  std::string final_path;
  int slot = -1;                // fixed file slot while open
  bool replaced_stale = false;  // an old temporary file was removed
  bool waiting_for_slot = false;

  char* buffer = nullptr;        // being filled by Append
  size_t capacity = 0;           // the size of `buffer`
  size_t fill = 0;               // bytes in `buffer`
  uint64_t expected_end = 0;     // the file's expected size; 0: unknown
  uint64_t next_offset = 0;      // file offset of `buffer`
  std::vector<Op*> pending;      // full buffers not yet sent to the kernel
  std::set<uint64_t> unwritten;  // offsets of buffers queued, not written
  bool resume = false;           // continues a kept temporary file
  bool shared = false;           // one range of a file others write too
  bool direct = false;           // written with O_DIRECT
  int in_flight = 0;             // operations sent, not completed
  int writes_in_flight = 0;      // of which writes

  bool open_sent = false;
  bool opened = false;
  bool close_sent = false;
  bool closed = false;
  bool renamed = false;
  bool unlinked = false;
  bool finishing = false;
  Ending ending = Ending::kAbandon;
  std::optional<Error> error;
};

DiskWriter::DiskWriter(const DiskOptions& options, std::unique_ptr<Ring> ring)
    : options_(options),
      ring_(std::move(ring)),
      pool_(options.buffer_size, options.buffer_budget) {}

DiskWriter::~DiskWriter() {
  for (File& f : files_) {
    if (f.buffer != nullptr) pool_.Release(f.buffer, f.capacity);
  }
}

Status DiskWriter::Create(const DiskOptions& options,
                          std::unique_ptr<DiskWriter>* out) {
  std::unique_ptr<Ring> ring;
  if (Status s = Ring::Create(options.ring_entries, options.file_slots, &ring);
      !s.ok()) {
    return s;
  }
  out->reset(new DiskWriter(options, std::move(ring)));
  return {};
}

Status DiskWriter::MakeParents(const std::string& final_path) {
  size_t slash = final_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return {};
  std::string dir = final_path.substr(0, slash);
  if (known_dirs_.count(dir) != 0) return {};
  if (::mkdir(dir.c_str(), 0777) != 0) {
    if (errno == ENOENT) {
      if (Status s = MakeParents(dir); !s.ok()) return s;
      if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
        return ErrorFromErrno(errno, "cannot create directory " + dir);
      }
    } else if (errno != EEXIST) {
      return ErrorFromErrno(errno, "cannot create directory " + dir);
    }
  }
  if (known_dirs_.size() >= kMaxKnownDirs) known_dirs_.clear();
  known_dirs_.insert(std::move(dir));
  return {};
}

Status DiskWriter::Begin(const std::string& final_path, uint64_t resume_at,
                         uint64_t cookie, FileId* id) {
  if (Status s = MakeParents(final_path); !s.ok()) return s;
  if (resume_at > 0) {
    const std::string temp_path = PartPathFor(final_path);
    // Bytes past the kept length may not all have been written; cut them
    // off. Rare (one per resumed file), so done here synchronously.
    int fd = ::open(temp_path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return ErrorFromErrno(errno, "cannot continue " + temp_path);
    }
    int rc = ::ftruncate(fd, static_cast<off_t>(resume_at));
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrorFromErrno(err, "cannot continue " + temp_path);
  }
  File& f = NewFile(final_path, resume_at, cookie, id);
  f.resume = resume_at > 0;
  return {};
}

DiskWriter::File& DiskWriter::NewFile(const std::string& final_path,
                                      uint64_t offset, uint64_t cookie,
                                      FileId* id) {
  if (free_files_.empty()) {
    free_files_.push_back(static_cast<FileId>(files_.size()));
    files_.emplace_back();
  }
  *id = free_files_.back();
  free_files_.pop_back();
  File& f = files_[*id];
  f.in_use = true;
  f.cookie = cookie;
  f.final_path = final_path;
  f.temp_path = PartPathFor(final_path);
  f.next_offset = offset;
  ++active_files_;
  return f;
}

Status DiskWriter::BeginRange(const std::string& final_path, uint64_t offset,
                              bool direct, uint64_t cookie, FileId* id) {
  File& f = NewFile(final_path, offset, cookie, id);
  f.resume = true;  // opened as it is: never created, never cut
  f.shared = true;
  f.direct = direct && offset % kDirectAlign == 0;
  return {};
}

void DiskWriter::Append(FileId id, const char* data, size_t size) {
  File& f = files_[id];
  if (f.error) return;
  while (size > 0) {
    if (f.buffer == nullptr) {
      // As large as the rest of the file, where that is known.
      uint64_t rest = f.expected_end > f.next_offset
                          ? f.expected_end - f.next_offset
                          : pool_.largest();
      f.capacity = pool_.SizeFor(std::max<uint64_t>(rest, size));
      f.buffer = pool_.Acquire(f.capacity);
      f.fill = 0;
    }
    size_t n = std::min(size, f.capacity - f.fill);
    std::memcpy(f.buffer + f.fill, data, n);
    f.fill += n;
    data += n;
    size -= n;
    if (f.fill == f.capacity) QueueCurrentBuffer(f);
  }
  Advance(id);
  // The disk is far behind the network: wait for it here, holding up the
  // whole loop, rather than let memory grow. Pausing single HTTP/2 streams
  // instead has stalled transfers in several libcurl versions.
  while (pool_.busy() > options_.buffer_limit && ops_in_flight_ > 0) {
    ring_->SubmitAndWait();
    DrainCompletions();
  }
}

void DiskWriter::SetCookie(FileId id, uint64_t cookie) {
  files_[id].cookie = cookie;
}

void DiskWriter::ExpectEnd(FileId id, uint64_t end) {
  files_[id].expected_end = end;
}

bool DiskWriter::failed(FileId id) const {
  return files_[id].error.has_value();
}

uint64_t DiskWriter::written(FileId id) const {
  const File& f = files_[id];
  return f.unwritten.empty() ? f.next_offset : *f.unwritten.begin();
}

void DiskWriter::Finish(FileId id, Ending ending) {
  File& f = files_[id];
  if (ending != Ending::kAbandon && f.fill > 0) {
    QueueCurrentBuffer(f);
  } else if (f.buffer != nullptr) {
    pool_.Release(f.buffer, f.capacity);
    f.buffer = nullptr;
  }
  f.finishing = true;
  f.ending = ending;
  Advance(id);
}

void DiskWriter::Submit() { ring_->Submit(); }

void DiskWriter::Poll(const DoneFn& done) {
  DrainCompletions();
  // Report after draining, so that `done` may start new files safely.
  std::vector<std::pair<uint64_t, Status>> finished;
  finished.swap(finished_);
  for (auto& [cookie, status] : finished) done(cookie, status);
}

void DiskWriter::DrainCompletions() {
  ring_->Drain([this](uint64_t user_data, int res) {
    OnCompletion(reinterpret_cast<Op*>(user_data), res);
  });
}

void DiskWriter::QueueCurrentBuffer(File& f) {
  Op* op = NewOp(static_cast<FileId>(&f - files_.data()), OpKind::kWrite);
  op->buffer = f.buffer;
  op->capacity = static_cast<uint32_t>(f.capacity);
  op->length = static_cast<uint32_t>(f.fill);
  if (f.direct && f.fill % kDirectAlign != 0) {
    // O_DIRECT writes whole blocks: pad with zeros, cut off later.
    const size_t padded =
        (f.fill + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
    std::memset(f.buffer + f.fill, 0, padded - f.fill);
    op->length = static_cast<uint32_t>(padded);
  }
  op->offset = f.next_offset;
  f.next_offset += f.fill;
  f.unwritten.insert(op->offset);
  f.pending.push_back(op);
  f.buffer = nullptr;
  f.fill = 0;
}

void DiskWriter::DropPending(File& f) {
  for (Op* op : f.pending) {
    pool_.Release(op->buffer, op->capacity);
    free_ops_.push_back(op);
  }
  f.pending.clear();
}

// Drives a file's state forward: called after every event that concerns
// it. Each step sends what can go now and returns; completions call back.
void DiskWriter::Advance(FileId id) {
  File& f = files_[id];

  // Stream full buffers as soon as the file is open, as one linked chain
  // at a time: buffered writes to one file serialize on its inode lock,
  // and several kernel workers contending for it burn CPU for nothing.
  if (f.opened && !f.error && !f.close_sent && !f.pending.empty() &&
      f.writes_in_flight == 0) {
    size_t count = std::min(f.pending.size(), kMaxChainedWrites);
    ring_->Reserve(static_cast<unsigned>(count));
    for (size_t i = 0; i < count; ++i) {
      PrepareWrite(id, f, f.pending[i], i + 1 < count);
    }
    f.pending.erase(f.pending.begin(), f.pending.begin() + count);
  }
  if (!f.finishing) {
    // A large file: open it once its first buffer is full.
    if (!f.open_sent && !f.pending.empty() && !f.error) {
      PrepareOpen(id, f, false);
    }
    return;
  }
  if (f.in_flight > 0) return;
  if (f.error || f.ending == Ending::kAbandon) {
    AdvanceAbort(id, f);
  } else {
    AdvanceCommit(id, f);
  }
}

// Also ends a kept file, which goes as far as its close.
void DiskWriter::AdvanceCommit(FileId id, File& f) {
  const bool rename = f.ending == Ending::kCommit;
  if (!f.open_sent) {
    if (!rename && f.pending.empty()) {
      Complete(id, f);  // nothing new to keep
      return;
    }
    if (f.pending.size() > kMaxChainedWrites) {
      PrepareOpen(id, f, false);
      return;
    }
    // Everything is here: one linked chain, one trip to the kernel.
    ring_->Reserve(static_cast<unsigned>(f.pending.size()) + 3);
    if (PrepareOpen(id, f, true) == nullptr) return;  // waits for a slot
    for (Op* op : f.pending) PrepareWrite(id, f, op, true);
    f.pending.clear();
    PrepareClose(id, f, rename);
    if (rename) PrepareRename(id, f);
    return;
  }
  if (!f.closed) {
    ring_->Reserve(2);
    PrepareClose(id, f, rename);
    if (rename) PrepareRename(id, f);
    return;
  }
  if (rename && !f.renamed) {
    PrepareRename(id, f);
    return;
  }
  Complete(id, f);
}

void DiskWriter::AdvanceAbort(FileId id, File& f) {
  DropPending(f);
  if (f.opened && !f.closed) {
    PrepareClose(id, f, false);
    return;
  }
  // Only what this attempt created: never a file other ranges share.
  if (f.opened && !f.unlinked && !f.shared) {
    PrepareUnlink(id, f);
    return;
  }
  Complete(id, f);
}

void DiskWriter::Complete(FileId id, File& f) {
  Status status;
  if (f.error) status = *f.error;
  finished_.emplace_back(f.cookie, std::move(status));
  f = File();
  free_files_.push_back(id);
  --active_files_;
}

DiskWriter::Op* DiskWriter::NewOp(FileId id, OpKind kind) {
  Op* op;
  if (free_ops_.empty()) {
    all_ops_.push_back(std::make_unique<Op>());
    op = all_ops_.back().get();
  } else {
    op = free_ops_.back();
    free_ops_.pop_back();
  }
  *op = Op();
  op->file = id;
  op->kind = kind;
  return op;
}

io_uring_sqe* DiskWriter::PrepareOpen(FileId id, File& f, bool link) {
  if (f.slot < 0) {
    f.slot = ring_->TakeSlot();
    if (f.slot < 0) {
      if (!f.waiting_for_slot) slot_waiters_.push_back(id);
      f.waiting_for_slot = true;
      return nullptr;
    }
  }
  io_uring_sqe* sqe = ring_->Sqe();
  // A direct descriptor is never inherited, so O_CLOEXEC is refused here.
  // O_EXCL: never write through a link or into a file someone else has;
  // a kept file that is continued was checked when it was cut to length.
  int flags = f.resume ? O_WRONLY | O_NOFOLLOW
                       : O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
  if (f.direct) flags |= O_DIRECT;
  io_uring_prep_openat_direct(sqe, AT_FDCWD, f.temp_path.c_str(), flags, 0666,
                              static_cast<unsigned>(f.slot));
  if (link) sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data(sqe, NewOp(id, OpKind::kOpen));
  ++ops_in_flight_;
  f.open_sent = true;
  ++f.in_flight;
  return sqe;
}

void DiskWriter::PrepareWrite(FileId, File& f, Op* op, bool link) {
  io_uring_sqe* sqe = ring_->Sqe();
  io_uring_prep_write(sqe, f.slot, op->buffer + op->done, op->length - op->done,
                      op->offset + op->done);
  sqe->flags |= IOSQE_FIXED_FILE;
  if (link) sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data(sqe, op);
  ++ops_in_flight_;
  ++f.in_flight;
  ++f.writes_in_flight;
}

void DiskWriter::PrepareClose(FileId id, File& f, bool link) {
  io_uring_sqe* sqe = ring_->Sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(f.slot));
  if (link) sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data(sqe, NewOp(id, OpKind::kClose));
  ++ops_in_flight_;
  f.close_sent = true;
  ++f.in_flight;
}

void DiskWriter::PrepareRename(FileId id, File& f) {
  io_uring_sqe* sqe = ring_->Sqe();
  io_uring_prep_renameat(sqe, AT_FDCWD, f.temp_path.c_str(), AT_FDCWD,
                         f.final_path.c_str(), 0);
  io_uring_sqe_set_data(sqe, NewOp(id, OpKind::kRename));
  ++ops_in_flight_;
  ++f.in_flight;
}

void DiskWriter::PrepareUnlink(FileId id, File& f) {
  io_uring_sqe* sqe = ring_->Sqe();
  io_uring_prep_unlinkat(sqe, AT_FDCWD, f.temp_path.c_str(), 0);
  io_uring_sqe_set_data(sqe, NewOp(id, OpKind::kUnlink));
  ++ops_in_flight_;
  ++f.in_flight;
}

void DiskWriter::OnCompletion(Op* op, int res) {
  const FileId id = op->file;
  File& f = files_[id];
  --f.in_flight;
  --ops_in_flight_;
  auto fail = [&f](int err, const char* what, const std::string& path) {
    if (!f.error) f.error = ErrorFromErrno(err, what + path);
  };
  bool keep_op = false;
  bool slot_freed = false;

  switch (op->kind) {
    case OpKind::kOpen:
      if (res == -EEXIST && !f.replaced_stale) {
        // Left by an interrupted run, or planted: remove whatever has the
        // name (a symbolic link itself, never its target) and create the
        // file afresh. Rare, so done here synchronously.
        f.replaced_stale = true;
        f.open_sent = false;
        slot_freed = true;
        if (::unlink(f.temp_path.c_str()) != 0 && errno != ENOENT) {
          fail(errno, "cannot replace ", f.temp_path);
        }
      } else if (res == -EINVAL && f.direct) {
        // The file system does not take O_DIRECT: through the cache.
        f.direct = false;
        f.open_sent = false;
        slot_freed = true;
      } else if (res < 0) {
        fail(-res, "cannot create ", f.temp_path);
        slot_freed = true;
      } else {
        f.opened = true;
      }
      break;
    case OpKind::kWrite:
      --f.writes_in_flight;
      if (res == -ECANCELED) {
        // An earlier link of its chain failed or was short; send it again
        // unless the file has failed.
        keep_op = !f.error;
        if (keep_op) f.pending.push_back(op);
      } else if (res <= 0) {
        fail(res == 0 ? ENOSPC : -res, "cannot write ", f.temp_path);
      } else if (op->done + static_cast<uint32_t>(res) < op->length) {
        op->done += static_cast<uint32_t>(res);
        keep_op = true;
        if (f.error) {
          keep_op = false;
        } else {
          PrepareWrite(id, f, op, false);
        }
      } else {
        f.unwritten.erase(op->offset);
      }
      if (!keep_op) pool_.Release(op->buffer, op->capacity);
      break;
    case OpKind::kClose:
      if (res == -ECANCELED) {
        f.close_sent = false;
      } else {
        f.closed = true;
        slot_freed = true;
        if (res < 0) fail(-res, "cannot close ", f.temp_path);
      }
      break;
    case OpKind::kRename:
      if (res != -ECANCELED) {
        if (res < 0) {
          fail(-res, "cannot rename to ", f.final_path);
        } else {
          f.renamed = true;
        }
      }
      break;
    case OpKind::kUnlink:
      f.unlinked = true;
      break;
  }
  if (!keep_op) free_ops_.push_back(op);

  if (slot_freed && f.slot >= 0) {
    ring_->ReturnSlot(f.slot);
    f.slot = -1;
  }
  Advance(id);
  if (slot_freed && !slot_waiters_.empty()) {
    FileId waiter = slot_waiters_.back();
    slot_waiters_.pop_back();
    files_[waiter].waiting_for_slot = false;
    Advance(waiter);
  }
}

}  // namespace ferry
