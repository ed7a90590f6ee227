#include "disk/disk_reader.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ferry {
namespace {

constexpr unsigned kStatMask =
    STATX_TYPE | STATX_SIZE | STATX_MTIME | STATX_INO;

Error Changed(const std::string& path, const std::string& how) {
  return Error(ErrorCode::kLocalIo, RetryClass::kPermanent,
               fmt::format("{} changed while it was being read ({}); not "
                           "sent, so that no half-new copy arrives",
                           path, how));
}

}  // namespace

struct DiskReader::Chunk {
  char* buffer = nullptr;
  size_t capacity = 0;  // the buffer's size, as the pool gave it
  uint64_t offset = 0;
  size_t length = 0;  // bytes this chunk holds once read
  size_t filled = 0;  // bytes read so far
  bool in_flight = false;
};

struct DiskReader::File {
  bool in_use = false;
  std::string path;
  uint64_t cookie = 0;
  bool small = false;  // read by one linked chain
  // The first read's length: for a small file, a buffer just larger than
  // the size expected, so that a file that grew shows as more bytes.
  size_t head_size = 0;
  int slot = -1;  // fixed file slot, -1 while waiting for one
  struct statx before {};
  struct statx after {};
  bool sized = false;  // `before` arrived
  uint64_t size = 0;
  bool opened = false;
  bool after_sent = false;
  bool after_done = false;
  bool close_sent = false;
  std::deque<Chunk> chunks;  // in file order; the front is being consumed
  uint64_t next_offset = 0;  // where the next read starts
  size_t front_used = 0;     // bytes of the front chunk consumed
  uint64_t consumed = 0;
  int in_flight = 0;
  bool ended = false;  // the consumer let go
  std::optional<Error> error;
};

struct DiskReader::Op {
  FileId file = 0;
  OpKind kind = OpKind::kRead;
  Chunk* chunk = nullptr;  // reads only
};

Status DiskReader::Create(const ReaderOptions& options,
                          std::unique_ptr<DiskReader>* out) {
  std::unique_ptr<Ring> ring;
  if (Status s = Ring::Create(options.ring_entries, options.file_slots, &ring);
      !s.ok()) {
    return s;
  }
  out->reset(new DiskReader(options, std::move(ring)));
  return {};
}

DiskReader::DiskReader(const ReaderOptions& options, std::unique_ptr<Ring> ring)
    : options_(options),
      ring_(std::move(ring)),
      pool_(options.buffer_size, options.buffer_budget) {}

DiskReader::~DiskReader() {
  // The ring is torn down first, which cancels what is in flight; only
  // then may the buffers go.
  ring_.reset();
  for (auto& f : files_) {
    for (Chunk& c : f->chunks) {
      if (c.buffer != nullptr) pool_.Release(c.buffer, c.capacity);
    }
  }
}

DiskReader::FileId DiskReader::Begin(const std::string& path,
                                     uint64_t expected_size, uint64_t cookie) {
  FileId id;
  if (!free_files_.empty()) {
    id = free_files_.back();
    free_files_.pop_back();
  } else {
    id = static_cast<FileId>(files_.size());
    files_.push_back(std::make_unique<File>());
  }
  File& f = *files_[id];
  f = File();
  f.in_use = true;
  f.path = path;
  f.cookie = cookie;
  f.small = expected_size < pool_.largest();
  f.head_size = f.small ? pool_.SizeFor(expected_size + 1) : pool_.largest();
  ++open_files_;
  f.slot = ring_->TakeSlot();
  if (f.slot < 0) {
    slot_waiters_.push_back(id);
  } else {
    StartFile(id);
  }
  return id;
}

void DiskReader::StartFile(FileId id) {
  File& f = *files_[id];
  if (f.small) {
    StartSmall(id, f);
  } else {
    StartLarge(id, f);
  }
}

// statx -> open -> read -> close -> statx, all in one submission. The read
// asks for a whole buffer, so that a file that grew shows as more bytes.
void DiskReader::StartSmall(FileId id, File& f) {
  ring_->Reserve(5);
  PrepareHead(id, f, IOSQE_IO_HARDLINK);

  // Hard links: the close and the second statx run even when the read
  // failed, so that the slot is always freed.
  io_uring_sqe* sqe = Prepare(NewOp(id, OpKind::kClose));
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(f.slot));
  sqe->flags |= IOSQE_IO_HARDLINK;
  f.close_sent = true;

  sqe = Prepare(NewOp(id, OpKind::kStatAfter));
  io_uring_prep_statx(sqe, AT_FDCWD, f.path.c_str(), 0, kStatMask, &f.after);
  f.after_sent = true;
}

// statx -> open -> first read; further reads once the size is known.
void DiskReader::StartLarge(FileId id, File& f) {
  ring_->Reserve(3);
  PrepareHead(id, f, 0);
  f.next_offset = f.head_size;
}

// The head of every file's chain: statx, open into the file's slot, and a
// read of a whole buffer from the start, each linked to what follows; the
// read carries `read_flags`. A direct descriptor is never inherited, so
// O_CLOEXEC is refused (and not needed) here.
void DiskReader::PrepareHead(FileId id, File& f, unsigned read_flags) {
  io_uring_sqe* sqe = Prepare(NewOp(id, OpKind::kStatBefore));
  io_uring_prep_statx(sqe, AT_FDCWD, f.path.c_str(), 0, kStatMask, &f.before);
  sqe->flags |= IOSQE_IO_LINK;
  sqe = Prepare(NewOp(id, OpKind::kOpen));
  io_uring_prep_openat_direct(sqe, AT_FDCWD, f.path.c_str(), O_RDONLY, 0,
                              static_cast<unsigned>(f.slot));
  sqe->flags |= IOSQE_IO_LINK;
  PrepareRead(id, f, AddChunk(f, 0, f.head_size), read_flags);
}

DiskReader::Chunk& DiskReader::AddChunk(File& f, uint64_t offset,
                                        size_t length) {
  Chunk& chunk = f.chunks.emplace_back();
  chunk.capacity = pool_.SizeFor(length);
  chunk.buffer = pool_.Acquire(chunk.capacity);
  chunk.offset = offset;
  chunk.length = length;
  return chunk;
}

void DiskReader::PrepareRead(FileId id, File& f, Chunk& chunk, unsigned flags) {
  io_uring_sqe* sqe = Prepare(NewOp(id, OpKind::kRead, &chunk));
  io_uring_prep_read(sqe, f.slot, chunk.buffer + chunk.filled,
                     static_cast<unsigned>(chunk.length - chunk.filled),
                     chunk.offset + chunk.filled);
  sqe->flags = static_cast<uint8_t>(sqe->flags | IOSQE_FIXED_FILE | flags);
  chunk.in_flight = true;
}

// Keeps up to buffers_per_file chunks read ahead of the consumer.
void DiskReader::IssueReads(FileId id, File& f) {
  if (f.error || !f.opened || !f.sized || f.small) return;
  while (f.chunks.size() < options_.buffers_per_file &&
         f.next_offset < f.size) {
    Chunk& chunk = AddChunk(f, f.next_offset,
                            static_cast<size_t>(std::min<uint64_t>(
                                pool_.largest(), f.size - f.next_offset)));
    f.next_offset += chunk.length;
    PrepareRead(id, f, chunk, 0);
  }
  MaybeFinishReading(id, f);
}

// Once every byte is read, the file is stat'ed again and closed.
void DiskReader::MaybeFinishReading(FileId id, File& f) {
  if (f.error || f.after_sent || !f.sized || f.next_offset < f.size) return;
  for (const Chunk& c : f.chunks) {
    if (c.in_flight) return;
  }
  ring_->Reserve(2);
  io_uring_sqe* sqe = Prepare(NewOp(id, OpKind::kStatAfter));
  io_uring_prep_statx(sqe, AT_FDCWD, f.path.c_str(), 0, kStatMask, &f.after);
  f.after_sent = true;
  sqe = Prepare(NewOp(id, OpKind::kClose));
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(f.slot));
  f.close_sent = true;
}

void DiskReader::CheckUnchanged(File& f) {
  const struct statx& a = f.before;
  const struct statx& b = f.after;
  if (a.stx_ino != b.stx_ino) {
    Fail(f, Changed(f.path, "replaced by another file"));
  } else if (a.stx_size != b.stx_size) {
    Fail(f,
         Changed(f.path, fmt::format("size {} -> {}", a.stx_size, b.stx_size)));
  } else if (a.stx_mtime.tv_sec != b.stx_mtime.tv_sec ||
             a.stx_mtime.tv_nsec != b.stx_mtime.tv_nsec) {
    Fail(f, Changed(f.path, "modification time"));
  }
}

void DiskReader::Fail(File& f, Error error) {
  if (f.error) return;
  f.error = std::move(error);
  if (!f.ended) ready_.push_back(f.cookie);
}

DiskReader::Op* DiskReader::NewOp(FileId id, OpKind kind, Chunk* chunk) {
  Op* op;
  if (free_ops_.empty()) {
    all_ops_.push_back(std::make_unique<Op>());
    op = all_ops_.back().get();
  } else {
    op = free_ops_.back();
    free_ops_.pop_back();
  }
  op->file = id;
  op->kind = kind;
  op->chunk = chunk;
  ++files_[id]->in_flight;
  return op;
}

io_uring_sqe* DiskReader::Prepare(Op* op) {
  io_uring_sqe* sqe = ring_->Sqe();
  io_uring_sqe_set_data(sqe, op);
  return sqe;
}

void DiskReader::Submit() { ring_->Submit(); }

void DiskReader::Poll(const ReadyFn& ready) {
  ring_->Drain([this](uint64_t data, int res) {
    OnCompletion(reinterpret_cast<Op*>(data), res);
  });
  ring_->Submit();
  std::vector<uint64_t> cookies;
  cookies.swap(ready_);
  for (uint64_t cookie : cookies) ready(cookie);
}

void DiskReader::OnCompletion(Op* op, int res) {
  FileId id = op->file;
  OpKind kind = op->kind;
  Chunk* chunk = op->chunk;
  free_ops_.push_back(op);
  File& f = *files_[id];
  --f.in_flight;

  switch (kind) {
    case OpKind::kStatBefore:
      if (res < 0) {
        Fail(f, ErrorFromErrno(-res, "cannot read " + f.path));
      } else if (!S_ISREG(f.before.stx_mode)) {
        Fail(f, Error(ErrorCode::kLocalIo, RetryClass::kPermanent,
                      f.path + " is not a regular file"));
      } else {
        f.sized = true;
        f.size = f.before.stx_size;
        if (f.small && f.size >= f.head_size) {
          Fail(f, Changed(f.path, "it grew"));
        }
      }
      break;
    case OpKind::kOpen:
      if (res < 0) {
        if (res != -ECANCELED) {
          Fail(f, ErrorFromErrno(-res, "cannot open " + f.path));
        }
      } else {
        f.opened = true;
      }
      break;
    case OpKind::kRead: {
      chunk->in_flight = false;
      if (res < 0) {
        if (res != -ECANCELED && f.opened) {
          Fail(f, ErrorFromErrno(-res, "cannot read " + f.path));
        }
        break;
      }
      chunk->filled += static_cast<size_t>(res);
      if (f.error || f.ended) break;
      // The size is known here: the read was linked after the statx.
      uint64_t left = f.size > chunk->offset ? f.size - chunk->offset : 0;
      size_t want =
          static_cast<size_t>(std::min<uint64_t>(chunk->length, left));
      if (chunk->filled > want) {
        Fail(f, Changed(f.path, "it grew"));
      } else if (chunk->filled < want) {
        if (res == 0) {
          Fail(f, Changed(f.path, "it shrank"));
        } else if (f.small) {
          // The chain has closed the file already; another attempt
          // reads it again.
          Fail(f, Error(ErrorCode::kLocalIo, RetryClass::kTransient,
                        "short read of " + f.path));
        } else {
          PrepareRead(id, f, *chunk, 0);
        }
      } else {
        chunk->length = want;
        if (!f.small && chunk->offset == 0) {
          f.next_offset = want;
          IssueReads(id, f);
        }
        MaybeFinishReading(id, f);
        if (&f.chunks.front() == chunk) ready_.push_back(f.cookie);
      }
      break;
    }
    case OpKind::kClose:
      break;
    case OpKind::kStatAfter:
      if (res < 0) {
        if (res != -ECANCELED) {
          Fail(f, Changed(f.path, std::strerror(-res)));
        }
      } else if (!f.error) {
        CheckUnchanged(f);
        f.after_done = true;
        if (!f.ended) ready_.push_back(f.cookie);
      }
      break;
  }
  if (f.ended) MaybeRelease(id, f);
}

std::optional<uint64_t> DiskReader::size(FileId id) const {
  const File& f = *files_[id];
  if (!f.sized || f.error) return std::nullopt;
  return f.size;
}

const std::optional<Error>& DiskReader::error(FileId id) const {
  return files_[id]->error;
}

std::string_view DiskReader::Peek(FileId id) const {
  const File& f = *files_[id];
  if (f.error || f.chunks.empty() || !f.sized) return {};
  const Chunk& c = f.chunks.front();
  if (c.in_flight || c.filled < c.length) return {};
  bool last = c.offset + c.length >= f.size;
  if (last && !f.after_done) return {};
  return std::string_view(c.buffer + f.front_used, c.length - f.front_used);
}

bool DiskReader::PeekIsLast(FileId id) const {
  const File& f = *files_[id];
  if (f.chunks.empty()) return true;
  const Chunk& c = f.chunks.front();
  return c.offset + c.length >= f.size;
}

void DiskReader::Consume(FileId id, size_t n) {
  File& f = *files_[id];
  f.front_used += n;
  f.consumed += n;
  Chunk& c = f.chunks.front();
  if (f.front_used < c.length) return;
  pool_.Release(c.buffer, c.capacity);
  f.chunks.pop_front();
  f.front_used = 0;
  IssueReads(id, f);
}

bool DiskReader::at_end(FileId id) const {
  const File& f = *files_[id];
  return !f.error && f.sized && f.after_done && f.consumed >= f.size;
}

void DiskReader::End(FileId id) {
  File& f = *files_[id];
  f.ended = true;
  MaybeRelease(id, f);
}

// Frees a file that its consumer let go, once the kernel is done with it:
// nothing in flight, and its slot closed.
void DiskReader::MaybeRelease(FileId id, File& f) {
  if (f.in_flight > 0) return;
  if (f.slot < 0) {
    auto waiting = std::find(slot_waiters_.begin(), slot_waiters_.end(), id);
    if (waiting != slot_waiters_.end()) slot_waiters_.erase(waiting);
  }
  if (f.slot >= 0 && f.opened && !f.close_sent) {
    io_uring_sqe* sqe = Prepare(NewOp(id, OpKind::kClose));
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(f.slot));
    f.close_sent = true;
    return;
  }
  for (Chunk& c : f.chunks) {
    if (c.buffer != nullptr) pool_.Release(c.buffer, c.capacity);
  }
  f.chunks.clear();
  int slot = f.slot;
  f.in_use = false;
  f.slot = -1;
  free_files_.push_back(id);
  --open_files_;
  if (slot >= 0) {
    if (slot_waiters_.empty()) {
      ring_->ReturnSlot(slot);
    } else {
      FileId next = slot_waiters_.front();
      slot_waiters_.pop_front();
      files_[next]->slot = slot;
      StartFile(next);
    }
  }
}

}  // namespace ferry
