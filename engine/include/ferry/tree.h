// Local trees and their manifests: `WriteTreeManifest` lists every regular
// file below a folder with its size and XXH3-128 digest; `VerifyManifest`
// checks a folder against such a manifest. Both hash many files at once on
// oneTBB worker threads, each reading through its own small io_uring ring
// (or pread where io_uring is not allowed), with a bounded number of
// buffers per thread: memory does not grow with the number of files.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ferry/error.h"

namespace ferry {

struct TreeManifestOptions {
  std::string dir;  // the folder to list
  // Where the manifest goes; empty: standard output. A file is written
  // under a temporary name beside it and renamed when complete, and is
  // not listed itself when it lies inside `dir`.
  std::string output;
  bool follow_symlinks = false;  // list what links point to
  int threads = 0;               // hashing threads; 0: one per core
  bool progress = false;         // a progress line on standard error

  // Set (from any thread or a signal handler) to stop: no new file is
  // read and no manifest is left behind. Null: never.
  const std::atomic<bool>* interrupt = nullptr;
  // Where log lines go; nullptr for spdlog's default logger.
  std::shared_ptr<spdlog::logger> logger;
};

struct TreeManifestSummary {
  uint64_t files = 0;    // lines written
  uint64_t bytes = 0;    // bytes hashed
  uint64_t skipped = 0;  // links, special files, names a manifest cannot hold
  uint64_t errors = 0;   // files or folders that could not be read
  double seconds = 0;

  // One line for people: counts, GiB, time, GiB/s.
  std::string ToText() const;
};

// Writes the manifest of `options.dir`: one line per regular file,
//   path <TAB> size <TAB> xxh128
// with the path relative to the folder and '/'-separated, sorted by the
// bytes of the path. Files or folders that cannot be read are logged as
// errors naming them and counted in `summary->errors`; every other file is
// still listed, and the manifest is still written. Returns an error (and
// leaves no manifest under the output's name) when the folder cannot be
// listed at all, the output cannot be written, or the run was interrupted.
[[nodiscard]] Status WriteTreeManifest(const TreeManifestOptions& options,
                                       TreeManifestSummary* summary);

// One way a local file differs from its manifest line.
struct TreeDifference {
  enum class Kind {
    kMissing,     // no such file
    kNotFile,     // exists, but is not a regular file
    kUnreadable,  // could not be opened or read; `actual` says why
    kSize,        // `expected` and `actual` are byte counts
    kChecksum,    // `expected` and `actual` are xxh128 digests
  };
  Kind kind = Kind::kMissing;
  std::string path;  // as the manifest names it
  std::string expected;
  std::string actual;

  // kind <TAB> path [<TAB> expected <TAB> actual], without a newline;
  // kind is one of missing, notfile, unreadable, size, checksum. For
  // unreadable the third column is the reason and there is no fourth.
  std::string ToLine() const;
};

struct VerifyOptions {
  std::string manifest;  // ferry's manifest format
  std::string dir;       // the folder the manifest's paths are relative to
  int threads = 0;       // hashing threads; 0: one per core
  bool progress = false;

  // Called for every difference, in manifest order, from one thread at a
  // time.
  std::function<void(const TreeDifference&)> on_difference;
  const std::atomic<bool>* interrupt = nullptr;
  std::shared_ptr<spdlog::logger> logger;
};

struct VerifySummary {
  uint64_t files = 0;        // manifest entries checked
  uint64_t differences = 0;  // entries that differ in any way
  uint64_t bytes = 0;        // bytes hashed
  double seconds = 0;

  std::string ToText() const;
};

// Checks every file the manifest names below `options.dir`: it must be a
// regular file; its size must equal the manifest's when given, and its
// xxh128 too (a file is hashed only when the manifest gives a digest and
// the size matched). Returns kManifest, before any file is read, when the
// manifest has bad lines (the message names them), kUsage when the folder
// is not one, an interruption as kInterrupted; otherwise ok, with the
// differences reported through `on_difference` and counted in `summary`.
[[nodiscard]] Status VerifyManifest(const VerifyOptions& options,
                                    VerifySummary* summary);

}  // namespace ferry
