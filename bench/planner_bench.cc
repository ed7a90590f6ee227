// The planner on its own thread, from a manifest file of 200,000 entries
// into its queue, with this thread taking the jobs as the transfer loop
// would: jobs per second, no network. The manifest is written once, with
// sizes and digests, 200 files to a folder, and removed at the end.
#include <benchmark/benchmark.h>
#include <spdlog/sinks/null_sink.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

#include "plan/planner.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

constexpr int kEntries = 200000;

class BenchManifest {
 public:
  BenchManifest() {
    dir_ = fs::temp_directory_path() /
           ("ferry-planner-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "dest");
    std::ofstream out(manifest());
    for (int i = 0; i < kEntries; ++i) {
      out << "run" << i / 200 << "/sample-" << i << ".dat\t" << 4096 + i
          << "\t99aa06d3014798d86001c324468d497f\n";
    }
  }
  ~BenchManifest() { fs::remove_all(dir_); }

  std::string manifest() const { return (dir_ / "manifest.tsv").string(); }
  // An empty folder: downloads find no local file.
  std::string dest() const { return (dir_ / "dest").string(); }

 private:
  fs::path dir_;
};

const BenchManifest& Manifest() {
  static BenchManifest manifest;
  return manifest;
}

// The transfer loop's side: take every job, ask to be woken, sleep until
// woken.
class Consumer {
 public:
  std::function<void()> WakeFn() {
    return [this] {
      std::lock_guard lock(mutex_);
      woken_ = true;
      cv_.notify_one();
    };
  }

  // Takes jobs until the end of the plan; returns how many.
  int64_t Drain(Planner& planner) {
    int64_t jobs = 0;
    for (;;) {
      std::optional<Job> job = planner.TryPop();
      if (!job) {
        planner.WantWakeup();
        job = planner.TryPop();
      }
      if (!job) {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return woken_; });
        woken_ = false;
        continue;
      }
      if (job->end_of_plan) return jobs;
      ++jobs;
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_ = false;  // guarded by mutex_
};

enum Case : int64_t {
  kGet,      // a download: URL, local path, destination checks, repeats
  kGetSize,  // and --sync size: a stat of each local file
  kStat,     // stat: the URL and repeats only
};

// Arg: the case.
void BM_Planner(benchmark::State& state) {
  const BenchManifest& m = Manifest();
  spdlog::logger log("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  Planner::Options o;
  o.manifest = m.manifest();
  o.base_url = "https://127.0.0.1:8443/project";
  o.op = state.range(0) == kStat ? Operation::kStat : Operation::kGet;
  o.sync = state.range(0) == kGetSize ? SyncLevel::kSize : SyncLevel::kNone;
  o.local_dir = m.dest();
  for (auto _ : state) {
    Consumer consumer;
    Planner planner(o, consumer.WakeFn(), &log);
    planner.Start();
    if (consumer.Drain(planner) != kEntries) {
      state.SkipWithError("jobs went missing");
    }
    if (planner.error()) state.SkipWithError("the manifest could not be read");
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
  state.SetLabel(state.range(0) == kGet       ? "get"
                 : state.range(0) == kGetSize ? "get --sync size"
                                              : "stat");
}
BENCHMARK(BM_Planner)
    ->ArgName("case")
    ->Arg(kGet)
    ->Arg(kGetSize)
    ->Arg(kStat)
    ->MinTime(1.5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ferry
