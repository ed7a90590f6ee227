// WriteTreeManifest: walks a folder, hashes its files on the pipeline of
// TreeHasher and writes the manifest lines in walk order.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "ferry/tree.h"
#include "verify/tree_hash.h"
#include "verify/tree_progress.h"
#include "verify/tree_walker.h"

namespace ferry {
namespace {

constexpr size_t kOutputBuffer = 1 << 20;

// Where the manifest's lines go: standard output, or a temporary file
// beside the output that is renamed to it by Commit() and removed if the
// run ends any other way.
class ManifestOutput {
 public:
  ~ManifestOutput() {
    if (file_ != nullptr && file_ != stdout) std::fclose(file_);
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }

  [[nodiscard]] Status Open(const std::string& output,
                            TreeWalker::Options* walk) {
    if (output.empty()) {
      file_ = stdout;
      return {};
    }
    output_ = output;
    size_t slash = output.rfind('/');
    std::string parent =
        slash == std::string::npos ? "" : output.substr(0, slash + 1);
    std::string name = output.substr(parent.size());
    if (name.empty()) {
      return Error(ErrorCode::kUsage, RetryClass::kPermanent,
                   output + " names a folder, not a file");
    }
    // mkostemp replaces the template's six trailing X's.
    temp_ = parent + "." + name + ".ferry-part-" + std::string(6, 'X');
    int fd = ::mkostemp(temp_.data(), O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      temp_.clear();
      return ErrorFromErrno(err, "cannot create a file beside " + output);
    }
    // mkostemp makes the file private; a manifest gets the usual mode.
    mode_t mask = ::umask(0);
    ::umask(mask);
    (void)::fchmod(fd, 0666 & ~mask);
    file_ = ::fdopen(fd, "w");
    if (file_ == nullptr) {
      int err = errno;
      ::close(fd);
      return ErrorFromErrno(err, "cannot write " + temp_);
    }

    // Neither the manifest nor its temporary file is listed.
    struct stat st {};
    if (::stat(parent.empty() ? "." : parent.c_str(), &st) == 0) {
      walk->exclude_dev = st.st_dev;
      walk->exclude_ino = st.st_ino;
      walk->exclude_names = {name, temp_.substr(temp_.rfind('/') + 1)};
    }
    return {};
  }

  FILE* file() const { return file_; }

  void Write(const std::string& line) {
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() &&
        write_error_ == 0) {
      write_error_ = errno;
    }
  }
  // A write failed (a full disk, a reader that went away): no use going on.
  bool failed() const { return write_error_ != 0; }

  // Flushes, closes and renames; an error when any write failed.
  [[nodiscard]] Status Commit() {
    std::string what = output_.empty() ? "standard output" : temp_;
    if (write_error_ == 0 && std::fflush(file_) != 0) write_error_ = errno;
    if (write_error_ != 0) {
      return ErrorFromErrno(write_error_,
                            "cannot write the manifest to " + what);
    }
    if (file_ == stdout) return {};
    int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) return ErrorFromErrno(errno, "cannot write " + temp_);
    if (::rename(temp_.c_str(), output_.c_str()) != 0) {
      return ErrorFromErrno(errno, "cannot rename " + temp_ + " to " + output_);
    }
    temp_.clear();
    return {};
  }

 private:
  std::string output_;
  std::string temp_;  // removed at the end unless renamed
  FILE* file_ = nullptr;
  int write_error_ = 0;  // errno of the first write that failed
};

// Logs a file the walk listed but that could not be hashed; true when it
// counts as an error (rather than a file that changed under the walk).
bool LogUnhashed(const HashTask& task, spdlog::logger& log) {
  const HashedFile& r = task.result;
  if (r.err == ENOENT) {
    log.warn("{}: removed while the tree was listed, skipped", task.rel);
    return false;
  }
  if (r.err == ELOOP && !task.follow) {
    log.info("{}: became a symbolic link, skipped", task.rel);
    return false;
  }
  if (r.err != 0) {
    log.error("{}: cannot {}: {}", task.rel, r.step, std::strerror(r.err));
    return true;
  }
  log.warn("{}: no longer a regular file, skipped", task.rel);
  return false;
}

}  // namespace

std::string TreeManifestSummary::ToText() const {
  std::string text = fmt::format(
      "manifest: {} files, {:.2f} GiB in {:.1f} s, {:.2f} GiB/s", files,
      static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0), seconds,
      GibPerSecond(bytes, seconds));
  if (skipped > 0) text += fmt::format(", {} skipped", skipped);
  if (errors > 0) text += fmt::format(", {} unreadable", errors);
  return text;
}

Status WriteTreeManifest(const TreeManifestOptions& options,
                         TreeManifestSummary* summary) {
  *summary = {};
  auto start = std::chrono::steady_clock::now();
  spdlog::logger& log =
      options.logger ? *options.logger : *spdlog::default_logger();

  TreeWalker::Options walk;
  walk.follow_symlinks = options.follow_symlinks;
  ManifestOutput out;
  if (Status s = out.Open(options.output, &walk); !s.ok()) return s;
  TreeWalker walker(options.dir, walk, log);
  if (Status s = walker.Open(); !s.ok()) return s;

  std::string root = options.dir;
  if (root.empty() || root.back() != '/') root += '/';
  bool interrupted = false;
  auto produce = [&](HashTask& task) {
    if (options.interrupt != nullptr && options.interrupt->load()) {
      interrupted = true;
      return false;
    }
    if (out.failed() || !walker.Next(&task.rel)) return false;
    task.path.assign(root).append(task.rel);
    task.follow = options.follow_symlinks;
    task.digest = true;
    task.expected_size.reset();
    return true;
  };

  TreeProgress progress(options.progress);
  std::string line;
  auto consume = [&](HashTask& task) {
    const HashedFile& r = task.result;
    if (!r.hashed || !r.regular) {
      ++(LogUnhashed(task, log) ? summary->errors : summary->skipped);
      return;
    }
    if (r.shrank()) {
      log.warn("{}: shrank from {} to {} bytes while it was read", task.rel,
               r.size_at_open, r.size);
    }
    line.clear();
    fmt::format_to(std::back_inserter(line), "{}\t{}\t{}\n", task.rel, r.size,
                   r.digest.ToHex());
    out.Write(line);
    ++summary->files;
    summary->bytes += r.size;
    progress.Add(r.size);
  };

  std::setvbuf(out.file(), nullptr, _IOFBF, kOutputBuffer);
  TreeHasher(options.threads, log).Run(produce, consume);
  progress.Finish();
  summary->skipped += walker.skipped();
  summary->errors += walker.errors();
  summary->seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (interrupted) {
    return Error(ErrorCode::kInterrupted, RetryClass::kStopRun,
                 "interrupted: no manifest written");
  }
  return out.Commit();
}

}  // namespace ferry
