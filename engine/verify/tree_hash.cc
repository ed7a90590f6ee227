#include "verify/tree_hash.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <memory>
#include <mutex>
#include <vector>

namespace ferry {
namespace {

// Tasks alive per thread: enough that a worker finds the next file ready
// while the consumer waits for a slow one in order.
constexpr size_t kTasksPerThread = 8;

}  // namespace

TreeHasher::TreeHasher(int threads, spdlog::logger& log, bool try_io_uring)
    : threads_(threads > 0 ? threads : tbb::info::default_concurrency()),
      log_(log),
      try_io_uring_(try_io_uring) {}

void TreeHasher::Run(const std::function<bool(HashTask&)>& produce,
                     const std::function<void(HashTask&)>& consume) {
  const size_t tokens = kTasksPerThread * static_cast<size_t>(threads_);
  // At most `tokens` tasks are alive and they finish in the order they
  // started, so task n can reuse the slot of task n - tokens.
  std::vector<HashTask> pool(tokens);
  size_t next_slot = 0;
  tbb::enumerable_thread_specific<std::unique_ptr<FileHasher>> hashers;
  std::once_flag fallback_warning;

  auto hasher_of_this_thread = [&]() -> FileHasher& {
    std::unique_ptr<FileHasher>& hasher = hashers.local();
    if (!hasher) {
      hasher = std::make_unique<FileHasher>(try_io_uring_);
      if (try_io_uring_ && !hasher->uses_io_uring()) {
        std::call_once(fallback_warning, [&] {
          log_.warn(
              "io_uring is not available here ({}): reading with "
              "pread instead, without overlapping reads",
              hasher->fallback_reason());
        });
      }
    }
    return *hasher;
  };

  auto source = [&](tbb::flow_control& control) -> HashTask* {
    HashTask& task = pool[next_slot];
    if (!produce(task)) {
      control.stop();
      return nullptr;
    }
    next_slot = (next_slot + 1) % tokens;
    return &task;
  };
  auto hash = [&](HashTask* task) -> HashTask* {
    hasher_of_this_thread().Hash(task->path.c_str(), task->follow, task->digest,
                                 task->expected_size, &task->result);
    return task;
  };
  auto sink = [&](HashTask* task) { consume(*task); };

  // More threads than cores pay off when reads wait for a disk or a
  // network file system; TBB allows them only when told so.
  tbb::global_control allowed(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(threads_));
  tbb::task_arena arena(threads_);
  arena.execute([&] {
    tbb::parallel_pipeline(tokens,
                           tbb::make_filter<void, HashTask*>(
                               tbb::filter_mode::serial_in_order, source) &
                               tbb::make_filter<HashTask*, HashTask*>(
                                   tbb::filter_mode::parallel, hash) &
                               tbb::make_filter<HashTask*, void>(
                                   tbb::filter_mode::serial_in_order, sink));
  });
}

}  // namespace ferry
