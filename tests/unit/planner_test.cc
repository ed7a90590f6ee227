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

TEST_F(PlannerTest, JobsThatNeedNoRequestWakeTheConsumerInBatches) {
  // One download, then a thousand repeats of it that the planner skips.
  constexpr int kRepeats = 1000;
  // A consumer that is always waiting when a job is pushed, as the
  // transfer loop is when the planner is the slower of the two: each
  // wake-up returns only once the consumer has taken every job and asked
  // to be woken again.
  std::mutex mutex;
  std::condition_variable cv;
  int wakes = 0;      // guarded by mutex
  bool ready = true;  // the consumer waits for the next wake-up
  auto wake = [&] {
    std::unique_lock lock(mutex);
    ++wakes;
    ready = false;
    cv.notify_all();
    cv.wait_for(lock, seconds(10), [&] { return ready; });
  };
  Planner planner(Download(std::vector<std::string>(kRepeats + 1, "a.dat")),
                  wake, &log_);
  planner.WantWakeup();
  planner.Start();
  std::vector<Job> jobs;
  int seen_wakes = 0;
  for (bool end = false; !end;) {
    {
      std::unique_lock lock(mutex);
      ASSERT_TRUE(
          cv.wait_for(lock, seconds(10), [&] { return wakes > seen_wakes; }))
          << "no wake-up after job " << jobs.size();
      seen_wakes = wakes;
    }
    for (;;) {
      std::optional<Job> job = planner.TryPop();
      if (!job) {
        planner.WantWakeup();
        job = planner.TryPop();
        if (!job) break;
      }
      if (job->end_of_plan) {
        end = true;
        break;
      }
      jobs.push_back(std::move(*job));
    }
    std::lock_guard lock(mutex);
    ready = true;
    cv.notify_all();
  }
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kRepeats + 1));
  EXPECT_EQ(jobs.back().skip_reason, "duplicate of line 1");
  // One wake-up a batch, a few more if the planner was slow for a while;
  // one a job would be a thousand.
  std::lock_guard lock(mutex);
  EXPECT_LE(wakes, kRepeats / static_cast<int>(Planner::kWakeBatch) + 20);
}

TEST_F(PlannerTest, AJobThatNeedsARequestWakesTheConsumerAtOnce) {
  Planner::Options o = Download({"a.dat", "b.dat"});
  // The second job cannot be queued, nor the end of the plan, before the
  // first is taken: the wake-up is the first job's.
  o.queue_capacity = 1;
  Consumer consumer;
  Planner planner(o, consumer.WakeFn(), &log_);
  planner.WantWakeup();
  ASSERT_FALSE(planner.TryPop());
  planner.Start();
  std::optional<Job> first = consumer.Next(planner);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->end_of_plan);
  EXPECT_EQ(first->path, "a.dat");
  EXPECT_EQ(first->step, Step::kGet);
  EXPECT_EQ(Drain(planner, consumer).size(), 1u);
}

TEST_F(PlannerTest, ABatchNeverOutgrowsASmallQueue) {
  Planner::Options o = Download(std::vector<std::string>(50, "a.dat"));
  o.queue_capacity = 2;
  Consumer consumer;
  Planner planner(o, consumer.WakeFn(), &log_);
  planner.Start();
  // Skipped jobs fill the queue before a batch is full: the consumer is
  // woken then, or the planner would wait on it for ever.
  EXPECT_EQ(Drain(planner, consumer).size(), 50u);
}

}  // namespace
}  // namespace ferry
