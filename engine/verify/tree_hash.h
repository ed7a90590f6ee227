// Hashes a stream of files on oneTBB worker threads and hands the results
// back in the order the files came in. One thread produces tasks (walking
// a tree, reading a manifest), every worker hashes with its own
// FileHasher, and one thread at a time consumes the results: a pipeline
// with a fixed number of tasks alive at once, reused from a pool, so that
// memory stays flat however many files pass.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "verify/file_hasher.h"

namespace ferry {

// One file to hash and what became of it. Reused for many files: the
// producer overwrites every field it uses.
struct HashTask {
  std::string rel;     // as the producer names it (relative path)
  std::string path;    // what to open
  bool follow = true;  // follow a final symbolic link
  bool digest = true;  // hash it; false: only look at its size
  std::optional<uint64_t> expected_size;  // a file of another size is
                                          // not hashed
  std::optional<Digest128> expected_digest;
  HashedFile result;  // filled by the worker
};

class TreeHasher {
 public:
  // `threads` workers (0: one per core), reading with io_uring unless
  // `try_io_uring` is false or it is unavailable.
  TreeHasher(int threads, spdlog::logger& log, bool try_io_uring = true);

  // Calls `produce` on one thread until it returns false, hashes each
  // task it filled on the workers, and calls `consume` with each finished
  // task in the order `produce` filled them, one call at a time. Neither
  // callback may throw.
  void Run(const std::function<bool(HashTask&)>& produce,
           const std::function<void(HashTask&)>& consume);

  int threads() const { return threads_; }

 private:
  int threads_;
  spdlog::logger& log_;
  bool try_io_uring_;
};

}  // namespace ferry
