#include "disk/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

namespace ferry {
namespace {

// Records are handed to the kernel once this many bytes wait.
constexpr size_t kFlushBytes = 64 * 1024;

// Beside `dir`, so that the folder itself ends up holding nothing but the
// files; a download's goes inside when the parent cannot take it, an
// upload's nowhere (empty).
std::string JournalPathFor(const std::string& dir, Journal::Side side) {
  const bool upload = side == Journal::Side::kUpload;
  const char* suffix = upload ? ".ferry-put-journal" : ".ferry-journal";
  std::string trimmed = dir;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  size_t slash = trimmed.rfind('/');
  std::string parent = slash == std::string::npos
                           ? "."
                           : trimmed.substr(0, slash == 0 ? 1 : slash);
  std::string name =
      slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  if (name.empty() || name == "." || name == ".." ||
      ::access(parent.c_str(), W_OK) != 0) {
    return upload ? "" : trimmed + "/" + suffix;
  }
  return (parent == "/" ? "" : parent) + "/." + name + suffix;
}

}  // namespace

Status Journal::Open(const std::string& dir, Side side, const std::string& run,
                     std::unique_ptr<Journal>* out) {
  out->reset();
  std::unique_ptr<Journal> j(new Journal());
  j->path_ = JournalPathFor(dir, side);
  if (j->path_.empty()) return {};
  j->fd_ = ::open(j->path_.c_str(),
                  O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (j->fd_ < 0) {
    return ErrorFromErrno(errno, "cannot open the run's journal " + j->path_);
  }
  if (::flock(j->fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error(ErrorCode::kUsage, RetryClass::kStopRun,
                   "another ferry run is writing to " + dir + " (it holds " +
                       j->path_ + ")");
    }
    return ErrorFromErrno(errno, "cannot lock the run's journal " + j->path_);
  }
  j->Load(run);
  *out = std::move(j);
  return {};
}

Journal::~Journal() {
  Flush(false);
  if (fd_ >= 0) ::close(fd_);
}

// One buffer hashed at once rather than a Hasher: a Hasher's state is an
// aligned allocation, and one per record, between the records' long-lived
// map nodes, left the heap ten times the maps' size when a journal of half
// a million files was read.
uint64_t Journal::Key(const std::string& url, const std::string& local) {
  std::string joined;
  joined.reserve(url.size() + 1 + local.size());
  joined.append(url).push_back('\0');
  joined.append(local);
  return HashBuffer(joined.data(), joined.size()).low;
}

// The first line names the run; a journal of another run (another
// manifest, or the same one changed since) is started afresh.
void Journal::Load(const std::string& run) {
  const std::string header = Line({{"k", "run"}, {"run", run}});
  int fd = ::dup(fd_);
  std::FILE* in = fd < 0 ? nullptr : ::fdopen(fd, "r");
  if (in == nullptr) {
    if (fd >= 0) ::close(fd);
    return;
  }
  std::rewind(in);
  char* line = nullptr;
  size_t capacity = 0;
  ssize_t n = ::getline(&line, &capacity, in);
  if (n <= 0 || std::string_view(line, static_cast<size_t>(n)) != header) {
    std::free(line);
    std::fclose(in);
    if (::ftruncate(fd_, 0) != 0 && !write_error_) {
      write_error_ = ErrorFromErrno(errno, "cannot reset the journal " + path_);
    }
    buffer_ = header;
    return;
  }
  while ((n = ::getline(&line, &capacity, in)) > 0) {
    // A line without its newline was being written when a run died; the
    // next record must not be glued to it.
    if (line[n - 1] != '\n') {
      buffer_ = "\n";
      break;
    }
    nlohmann::json e = nlohmann::json::parse(line, line + n, nullptr, false);
    try {
      Apply(e);
    } catch (const nlohmann::json::exception&) {
      // A line that is not what ferry writes: ignored like a torn one.
    }
  }
  std::free(line);
  std::fclose(in);
  done_count_ = done_.size();
  part_count_ = parts_.size();
}

// Takes in one record of an earlier run; throws on fields of the wrong
// type.
void Journal::Apply(const nlohmann::json& e) {
  if (!e.is_object() || !e.contains("url") || !e.contains("local")) return;
  const nlohmann::json& url = e["url"];
  const nlohmann::json& local = e["local"];
  if (!url.is_string() || !local.is_string()) return;
  uint64_t key = Key(url.get<std::string>(), local.get<std::string>());
  std::string kind = e.value("k", "");
  if (kind == "done") {
    Done d;
    d.size = e.value("size", uint64_t{0});
    d.mtime_ns = e.value("mtime_ns", int64_t{0});
    d.ino = e.value("ino", uint64_t{0});
    done_[key] = d;
    parts_.erase(key);
  } else if (kind == "part") {
    Part p;
    p.length = e.value("length", uint64_t{0});
    p.total = e.value("total", uint64_t{0});
    p.etag = e.value("etag", "");
    parts_[key] = p;
    done_.erase(key);
  }
}

const Journal::Done* Journal::FindDone(const std::string& url,
                                       const std::string& local) const {
  auto it = done_.find(Key(url, local));
  return it == done_.end() ? nullptr : &it->second;
}

const Journal::Part* Journal::FindPart(const std::string& url,
                                       const std::string& local) const {
  auto it = parts_.find(Key(url, local));
  return it == parts_.end() ? nullptr : &it->second;
}

void Journal::RecordDone(const std::string& url, const std::string& local,
                         const Done& done) {
  Append({{"k", "done"},
          {"url", url},
          {"local", local},
          {"size", done.size},
          {"mtime_ns", done.mtime_ns},
          {"ino", done.ino}});
}

void Journal::RecordPart(const std::string& url, const std::string& local,
                         const Part& part) {
  Append({{"k", "part"},
          {"url", url},
          {"local", local},
          {"length", part.length},
          {"total", part.total},
          {"etag", part.etag}});
}

// Paths are bytes; a name that is not UTF-8 must not break the journal.
std::string Journal::Line(const nlohmann::json& record) {
  return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         '\n';
}

void Journal::Append(const nlohmann::json& record) {
  buffer_ += Line(record);
  if (buffer_.size() >= kFlushBytes) Flush(false);
}

void Journal::Flush(bool sync) {
  if (fd_ < 0) return;
  size_t at = 0;
  while (at < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + at, buffer_.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!write_error_) {
        write_error_ =
            ErrorFromErrno(errno, "cannot write the journal " + path_);
      }
      break;
    }
    at += static_cast<size_t>(n);
  }
  buffer_.clear();
  if (sync && ::fdatasync(fd_) != 0 && !write_error_) {
    write_error_ = ErrorFromErrno(errno, "cannot sync the journal " + path_);
  }
}

void Journal::Remove() {
  buffer_.clear();
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace ferry
