#include "plan/planner.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>

#include "disk/disk_writer.h"
#include "disk/journal.h"
#include "ferry/own_files.h"
#include "ferry/url.h"
#include "plan/dest_guard.h"
#include "verify/file_hasher.h"
#include "verify/tree_walker.h"

namespace ferry {
namespace {

bool IsAbsolute(const std::string& path) {
  return !path.empty() && path.front() == '/';
}

}  // namespace

Planner::Planner(Options options, std::function<void()> wake,
                 spdlog::logger* log)
    : options_(std::move(options)),
      root_url_(RootUrl(options_.base_url)),
      wake_(std::move(wake)),
      log_(log) {
  if (options_.op == Operation::kGet) {
    guard_ = std::make_unique<DestinationGuard>(options_.local_dir);
  }
}

// Made at first use: most runs hash nothing here, and its buffers are a
// few megabytes that the kernel may pin.
FileHasher& Planner::LocalHasher() const {
  if (!hasher_) hasher_ = std::make_unique<FileHasher>();
  return *hasher_;
}

Planner::~Planner() { Stop(); }

void Planner::Start() {
  thread_ = std::thread([this] { Run(); });
}

std::optional<Job> Planner::TryPop() {
  std::optional<Job> job;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return job;
    job = std::move(queue_.front());
    queue_.pop_front();
  }
  not_full_.notify_one();
  return job;
}

void Planner::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    queue_.clear();
  }
  not_full_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Planner::Push(Job job) {
  const bool urgent =
      job.end_of_plan || (!job.error && job.skip_reason.empty());
  size_t queued = 0;
  {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [this] {
      return stopped_ || queue_.size() < options_.queue_capacity;
    });
    if (stopped_) return false;
    queue_.push_back(std::move(job));
    queued = queue_.size();
  }
  if (!urgent && !Announce(queued)) return true;
  unannounced_since_.reset();
  if (consumer_waiting_.exchange(false)) wake_();
  return true;
}

// A job decided here is only reported: the consumer can take it with
// others. The batch never outgrows the queue, so the planner never blocks
// on a full queue that the consumer was not told about.
bool Planner::Announce(size_t queued) {
  const Clock::time_point now = Clock::now();
  if (!unannounced_since_) unannounced_since_ = now;
  return queued >= std::min(kWakeBatch, options_.queue_capacity) ||
         now - *unannounced_since_ >= kWakeDelay;
}

void Planner::Run() {
  ManifestReader reader;
  if (Status s = reader.Open(options_.manifest, options_.format); !s.ok()) {
    error_ = s.error();
  } else {
    ManifestEntry entry;
    auto push = [this](const ManifestEntry& e, Job* failed) {
      if (failed != nullptr) return Push(std::move(*failed));
      Job job = Plan(e);
      MarkRepeat(job);
      return Push(std::move(job));
    };
    while (reader.Next(&entry)) {
      if (entry.recursive) {
        if (!Expand(entry, push)) return;
      } else if (!push(entry, nullptr)) {
        return;
      }
    }
    error_ = reader.error();
  }
  Job end;
  end.end_of_plan = true;
  Push(std::move(end));
}

Job Planner::Plan(const ManifestEntry& entry) const {
  const bool upload = options_.op == Operation::kPut;
  // Downloads go from the entry's path to its destination; uploads the
  // other way round.
  const std::string& remote = upload ? entry.destination() : entry.path;
  const std::string& local = upload ? entry.path : entry.destination();

  Job job;
  job.path = entry.path;
  job.line = entry.line;
  job.size = entry.size;
  job.xxh128 = entry.xxh128;
  job.url = IsAbsolute(remote) ? FileUrl(root_url_, remote.substr(1))
                               : FileUrl(options_.base_url, remote);
  if (options_.op == Operation::kGet || upload) job.local = LocalPath(local);
  job.download = options_.op == Operation::kGet;
  switch (options_.op) {
    case Operation::kGet:
      job.step = Step::kGet;
      break;
    case Operation::kPut:
      job.step = Step::kPut;
      break;
    case Operation::kRemove:
      job.step = Step::kDelete;
      return job;
    case Operation::kStat:
      job.step = Step::kHead;
      return job;
  }
  if (guard_ != nullptr && !IsAbsolute(local)) {
    if (Status s = guard_->Check(job.local); !s.ok()) {
      job.error = s.error();
      return job;
    }
  }
  if (job.download) {
    std::string_view name = job.local;
    name.remove_prefix(name.rfind('/') + 1);
    if (IsOwnFileName(name)) {
      job.error = Error(ErrorCode::kManifest, RetryClass::kPermanent,
                        fmt::format("line {}: {:?} is the name of a file ferry "
                                    "keeps for itself (a partial download or "
                                    "a journal); not written",
                                    job.line, std::string(name)));
      return job;
    }
  }
  if (options_.journal != nullptr && FinishedEarlier(job)) return job;
  DecideLocally(job);
  // Bytes kept by an earlier run are continued on one stream instead.
  job.in_ranges = job.download && options_.split_above > 0 && job.size &&
                  *job.size >= options_.split_above && !job.kept;
  return job;
}

// A line that repeats an earlier one word for word (the same file, the
// same destination, the same size and digest columns) is done once.
void Planner::MarkRepeat(Job& job) {
  const std::string& key = job.key();
  // The entry's bytes in one reused buffer, hashed at once: a Hasher per
  // line is an aligned allocation per line, and those, between the
  // long-lived nodes of seen_, fragment the heap (a rerun that skipped half
  // a million files held 90 MB more).
  std::string& entry = entry_bytes_;
  entry.assign(job.url.c_str(), job.url.size() + 1);  // with its '\0'
  entry.append(job.local.c_str(), job.local.size() + 1);
  const uint64_t size = job.size.value_or(~uint64_t{0});
  entry.append(reinterpret_cast<const char*>(&size), sizeof size);
  if (job.xxh128) {
    entry.append(reinterpret_cast<const char*>(&*job.xxh128),
                 sizeof *job.xxh128);
  }
  const uint64_t entry_digest = HashBuffer(entry.data(), entry.size()).low;
  auto [seen, first] = seen_.try_emplace(HashBuffer(key.data(), key.size()).low,
                                         SeenKey{job.line, entry_digest});
  if (first || seen->second.entry != entry_digest) return;
  log_->warn("{:?}: line {} repeats line {}; done once", job.path, job.line,
             seen->second.line);
  job.error.reset();
  job.kept.reset();
  job.skip_reason = fmt::format("duplicate of line {}", seen->second.line);
}

bool Planner::FinishedEarlier(Job& job) const {
  struct stat st {};
  // A sync level asks to compare the two sides, whatever ran before.
  const Journal::Done* done =
      options_.sync == SyncLevel::kNone
          ? options_.journal->FindDone(job.url, job.local)
          : nullptr;
  if (done != nullptr) {
    if (::lstat(job.local.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<uint64_t>(st.st_size) == done->size &&
        static_cast<uint64_t>(st.st_ino) == done->ino &&
        st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec ==
            done->mtime_ns &&
        (!job.size || *job.size == done->size)) {
      job.skip_reason = "complete (finished by an earlier run)";
      return true;
    }
    return false;
  }
  const Journal::Part* part = options_.journal->FindPart(job.url, job.local);
  if (part == nullptr || part->length == 0) return false;
  if (part->total != 0 && job.size && *job.size != part->total) return false;
  // The kept bytes' digest state, so that the whole file's digest comes
  // out of the bytes on disk and those still to come.
  auto state = std::make_shared<Hasher>();
  if (!LocalHasher().HashPrefix(PartPathFor(job.local).c_str(), part->length,
                                state.get())) {
    return false;
  }
  Job::Kept kept;
  kept.length = part->length;
  kept.total = part->total;
  kept.etag = part->etag;
  kept.hash = std::move(state);
  log_->info("{:?}: continuing from byte {} kept by an earlier run", job.path,
             kept.length);
  job.kept = std::move(kept);
  return false;
}

std::string Planner::LocalPath(const std::string& path) const {
  return IsAbsolute(path) ? path : options_.local_dir + "/" + path;
}

bool Planner::Expand(const ManifestEntry& folder, const EntryFn& fn) const {
  TreeWalker walker(LocalPath(folder.path), TreeWalker::Options(), *log_);
  if (Status s = walker.Open(); !s.ok()) {
    // The folder itself fails, as one entry.
    Job job;
    job.path = folder.path;
    job.line = folder.line;
    job.url = folder.destination();
    job.error = s.error();
    return fn(folder, &job);
  }
  ManifestEntry file;
  file.line = folder.line;
  std::string rel;
  while (walker.Next(&rel)) {
    file.path = folder.path + "/" + rel;
    file.dest = folder.destination() + "/" + rel;
    if (!fn(file, nullptr)) return false;
  }
  return true;
}

Status Planner::CountFiles(uint64_t* files) const {
  *files = 0;
  ManifestReader reader;
  if (Status s = reader.Open(options_.manifest, options_.format); !s.ok()) {
    return s;
  }
  ManifestEntry entry;
  auto count = [files](const ManifestEntry&, Job*) {
    ++*files;
    return true;
  };
  while (reader.Next(&entry)) {
    if (entry.recursive && options_.op == Operation::kPut) {
      Expand(entry, count);
    } else {
      ++*files;
    }
  }
  if (reader.error()) return *reader.error();
  return {};
}

// What can be known without a request: the local side's size, time and
// (for the checksum level of a download) contents.
void Planner::DecideLocally(Job& job) const {
  const bool upload = options_.op == Operation::kPut;
  if (!upload && options_.sync == SyncLevel::kNone) return;

  struct stat st {};
  if (::stat(job.local.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      job.error = Error(ErrorCode::kLocalIo, RetryClass::kPermanent,
                        fmt::format("{} is not a regular file", job.local));
      return;
    }
    job.local_exists = true;
    job.local_size = static_cast<uint64_t>(st.st_size);
    job.local_mtime = st.st_mtim.tv_sec;
  } else if (upload || errno != ENOENT) {
    job.error = ErrorFromErrno(errno, "cannot read " + job.local);
    return;
  }

  if (upload) {
    // The collection's side is known only from a HEAD request.
    if (options_.sync != SyncLevel::kNone) job.step = Step::kHead;
    return;
  }
  if (!job.local_exists) return;  // a download with nothing to compare
  switch (options_.sync) {
    case SyncLevel::kNone:
      return;
    case SyncLevel::kExists:
      job.skip_reason = "exists";
      return;
    case SyncLevel::kSize:
      if (!job.size) {
        job.step = Step::kHead;
      } else if (*job.size == job.local_size) {
        job.skip_reason = "same size";
      }
      return;
    case SyncLevel::kMtime:
      job.step = Step::kHead;
      return;
    case SyncLevel::kChecksum: {
      if (job.size && *job.size != job.local_size) return;
      HashedFile hashed;
      LocalHasher().Hash(job.local.c_str(), /*follow=*/true, /*digest=*/true,
                         std::nullopt, &hashed);
      if (!hashed.hashed) {
        job.error = ErrorFromErrno(
            hashed.err != 0 ? hashed.err : EIO,
            fmt::format("cannot hash {} ({})", job.local, hashed.step));
        return;
      }
      if (job.xxh128 && hashed.digest == *job.xxh128) {
        job.skip_reason = "same checksum";
      }
      return;
    }
  }
}

}  // namespace ferry
