// Hashing a tree of files from the page cache on the TreeHasher pipeline:
// large files and many small ones, read through io_uring and with pread,
// on one thread and on every core.
#include <benchmark/benchmark.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "verify/tree_hash.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

// A folder of `count` files of `size` bytes, made once per shape and
// removed when the program ends.
class BenchTree {
 public:
  BenchTree(size_t count, size_t size) {
    dir_ = fs::temp_directory_path() /
           ("ferry-tree-bench-" + std::to_string(::getpid()) + "-" +
            std::to_string(count) + "x" + std::to_string(size));
    fs::create_directories(dir_);
    std::string data(size, '\0');
    for (size_t i = 0; i < count; ++i) {
      for (size_t j = 0; j < size; ++j) {
        data[j] = static_cast<char>((i * 7919 + j * 131) >> 3);
      }
      std::string path = (dir_ / ("f" + std::to_string(i))).string();
      std::ofstream(path, std::ios::binary)
          .write(data.data(), static_cast<std::streamsize>(size));
      paths_.push_back(path);
    }
  }
  ~BenchTree() { fs::remove_all(dir_); }

  const std::vector<std::string>& paths() const { return paths_; }

 private:
  fs::path dir_;
  std::vector<std::string> paths_;
};

// The two shapes measured: 16 x 32 MiB and 4096 x 16 KiB.
const BenchTree& TreeOf(size_t count) {
  static BenchTree large(16, 32 << 20);
  static BenchTree small(4096, 16 << 10);
  return count == 16 ? large : small;
}

// Args: file count, file size, threads, io_uring (1) or pread (0).
void BM_TreeHasher(benchmark::State& state) {
  auto count = static_cast<size_t>(state.range(0));
  auto size = static_cast<size_t>(state.range(1));
  const BenchTree& tree = TreeOf(count);
  spdlog::logger log("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  TreeHasher hasher(static_cast<int>(state.range(2)), log, state.range(3) == 1);
  for (auto _ : state) {
    size_t next = 0;
    uint64_t bytes = 0;
    hasher.Run(
        [&](HashTask& task) {
          if (next == tree.paths().size()) return false;
          task.path = tree.paths()[next++];
          return true;
        },
        [&](HashTask& task) { bytes += task.result.size; });
    benchmark::DoNotOptimize(bytes);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(count * size));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(count));
}
BENCHMARK(BM_TreeHasher)
    ->ArgNames({"files", "size", "threads", "uring"})
    ->ArgsProduct({{16}, {32 << 20}, {1, 2}, {0, 1}})
    ->ArgsProduct({{4096}, {16 << 10}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ferry
