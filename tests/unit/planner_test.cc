#include "plan/planner.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "unit/scratch_dir.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// The transfer loop's side of the planner, reduced to what it asks of it:
// take jobs while there are any, ask to be woken, sleep until woken.
class Consumer {
 public:
  std::function<void()> WakeFn() {
    return [this] {
      std::lock_guard lock(mutex_);
      ++wakes_;
      woken_ = true;
      cv_.notify_one();
    };
  }

  // The next job, or nullopt when no wake came within `patience`.
  std::optional<Job> Next(Planner& planner, seconds patience = seconds(10)) {
    for (;;) {
      std::optional<Job> job = planner.TryPop();
      if (job) return job;
      planner.WantWakeup();
      job = planner.TryPop();
      if (job) return job;
      std::unique_lock lock(mutex_);
      if (!cv_.wait_for(lock, patience, [this] { return woken_; })) {
        return std::nullopt;
      }
      woken_ = false;
    }
  }

  int wakes() {
    std::lock_guard lock(mutex_);
    return wakes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_ = false;  // guarded by mutex_
  int wakes_ = 0;       // guarded by mutex_
};

class PlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::MakeScratchDir("ferry-planner");
    fs::create_directories(root_ / "dest");
  }
  void TearDown() override { fs::remove_all(root_); }

  // A download of the manifest made of `lines` into root_/dest.
  Planner::Options Download(const std::vector<std::string>& lines) {
    const fs::path manifest = root_ / "manifest.tsv";
    std::ofstream out(manifest);
    for (const std::string& line : lines) out << line << '\n';
    Planner::Options o;
    o.op = Operation::kGet;
    o.manifest = manifest.string();
    o.base_url = "https://127.0.0.1:8443/data";
    o.local_dir = (root_ / "dest").string();
    return o;
  }

  // Every job up to the end of the plan, in order; fails the test when the
  // planner stops waking the consumer.
  std::vector<Job> Drain(Planner& planner, Consumer& consumer) {
    std::vector<Job> jobs;
    for (;;) {
      std::optional<Job> job = consumer.Next(planner);
      if (!job) {
        ADD_FAILURE() << "no wake-up after job " << jobs.size();
        return jobs;
      }
      if (job->end_of_plan) return jobs;
      jobs.push_back(std::move(*job));
    }
  }

  fs::path root_;
  spdlog::logger log_{"test", std::make_shared<spdlog::sinks::null_sink_mt>()};
};

TEST_F(PlannerTest, ALineThatRepeatsAnEarlierOneIsDoneOnce) {
  Consumer consumer;
  Planner planner(
      Download({"a.dat\t5", "b.dat\t5", "a.dat\t5", "a.dat\t6", "a.dat\t5"}),
      consumer.WakeFn(), &log_);
  planner.Start();
  std::vector<Job> jobs = Drain(planner, consumer);
  ASSERT_EQ(jobs.size(), 5u);
  EXPECT_EQ(jobs[0].skip_reason, "");
  EXPECT_EQ(jobs[1].skip_reason, "");
  EXPECT_EQ(jobs[2].skip_reason, "duplicate of line 1");
  // Another size for the same destination is another entry: it waits for
  // the first in the transfer loop and then replaces it.
  EXPECT_EQ(jobs[3].skip_reason, "");
  EXPECT_EQ(jobs[4].skip_reason, "duplicate of line 1");
}

}  // namespace
}  // namespace ferry
