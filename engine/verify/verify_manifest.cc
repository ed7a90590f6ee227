// VerifyManifest: reads a manifest as a stream, hashes the files it names
// on the pipeline of TreeHasher and compares them with it, in manifest
// order.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "ferry/manifest.h"
#include "ferry/tree.h"
#include "verify/tree_hash.h"
#include "verify/tree_progress.h"
#include "verify/tree_walker.h"

namespace ferry {
namespace {

const char* KindName(TreeDifference::Kind kind) {
  switch (kind) {
    case TreeDifference::Kind::kMissing:
      return "missing";
    case TreeDifference::Kind::kNotFile:
      return "notfile";
    case TreeDifference::Kind::kUnreadable:
      return "unreadable";
    case TreeDifference::Kind::kSize:
      return "size";
    case TreeDifference::Kind::kChecksum:
      return "checksum";
  }
  return "unknown";
}

// How a file differs from what its manifest line promised; nullopt when
// it does not.
std::optional<TreeDifference> Compare(const HashTask& task) {
  using Kind = TreeDifference::Kind;
  const HashedFile& r = task.result;
  TreeDifference d;
  d.path = task.rel;
  if (r.err == ENOENT || r.err == ENOTDIR) {
    d.kind = Kind::kMissing;
  } else if (r.err != 0) {
    d.kind = Kind::kUnreadable;
    d.expected = fmt::format("cannot {}: {}", r.step, std::strerror(r.err));
  } else if (!r.regular) {
    d.kind = Kind::kNotFile;
    d.expected = "regular file";
    d.actual = FileTypeName(r.type);
  } else if (task.expected_size && *task.expected_size != r.size) {
    d.kind = Kind::kSize;
    d.expected = std::to_string(*task.expected_size);
    d.actual = std::to_string(r.size);
  } else if (task.expected_digest && *task.expected_digest != r.digest) {
    d.kind = Kind::kChecksum;
    d.expected = task.expected_digest->ToHex();
    d.actual = r.digest.ToHex();
  } else {
    return std::nullopt;
  }
  return d;
}

// The manifest is checked whole before any file is read, so that a bad
// line costs nothing; one that cannot be opened is bad usage.
Status CheckWholeManifest(const std::string& path) {
  ManifestCheck check;
  Status s = CheckManifest(path, ManifestFormat::kFerry, &check);
  if (s.ok() || s.error().code() == ErrorCode::kManifest) return s;
  return Error(ErrorCode::kUsage, RetryClass::kPermanent, s.error().message());
}

Status CheckFolder(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Error(ErrorCode::kUsage, RetryClass::kPermanent,
                 fmt::format("{}: {}", dir, std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kUsage, RetryClass::kPermanent,
                 dir + " is not a folder");
  }
  return {};
}

}  // namespace

std::string TreeDifference::ToLine() const {
  std::string line = fmt::format("{}\t{}", KindName(kind), path);
  if (!expected.empty()) line += "\t" + expected;
  if (!actual.empty()) line += "\t" + actual;
  return line;
}

std::string VerifySummary::ToText() const {
  return fmt::format(
      "verify: {} files checked, {} differ; {:.2f} GiB hashed in {:.1f} s, "
      "{:.2f} GiB/s",
      files, differences,
      static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0), seconds,
      GibPerSecond(bytes, seconds));
}

Status VerifyManifest(const VerifyOptions& options, VerifySummary* summary) {
  *summary = {};
  auto start = std::chrono::steady_clock::now();
  spdlog::logger& log =
      options.logger ? *options.logger : *spdlog::default_logger();
  if (Status s = CheckFolder(options.dir); !s.ok()) return s;
  if (Status s = CheckWholeManifest(options.manifest); !s.ok()) return s;
  ManifestReader reader;
  if (Status s = reader.Open(options.manifest); !s.ok()) return s;

  std::string root = options.dir;
  if (root.empty() || root.back() != '/') root += '/';
  bool interrupted = false;
  ManifestEntry entry;
  auto produce = [&](HashTask& task) {
    if (options.interrupt != nullptr && options.interrupt->load()) {
      interrupted = true;
      return false;
    }
    if (!reader.Next(&entry)) return false;
    task.rel.assign(entry.path);
    task.path.assign(root).append(entry.path);
    task.follow = true;
    task.digest = entry.xxh128.has_value();
    task.expected_size = entry.size;
    task.expected_digest = entry.xxh128;
    return true;
  };

  TreeProgress progress(options.progress);
  auto consume = [&](HashTask& task) {
    ++summary->files;
    if (task.result.hashed) summary->bytes += task.result.size;
    progress.Add(task.result.hashed ? task.result.size : 0);
    std::optional<TreeDifference> difference = Compare(task);
    if (!difference) return;
    ++summary->differences;
    if (options.on_difference) options.on_difference(*difference);
  };

  TreeHasher(options.threads, log).Run(produce, consume);
  progress.Finish();
  summary->seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (interrupted) {
    return Error(ErrorCode::kInterrupted, RetryClass::kStopRun,
                 "interrupted before every file was checked");
  }
  // The manifest changed or became unreadable since it was checked.
  if (reader.error()) return *reader.error();
  return {};
}

}  // namespace ferry
