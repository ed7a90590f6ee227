// Turns manifest entries into jobs on a thread of its own, ahead of the
// transfer loop, through a bounded queue: memory stays flat whatever the
// manifest's length, and the loop never waits on the manifest's disk.
//
// The planner also looks at the local side of each file (a stat, and for
// the checksum level a hash), so that sync decisions that need no request
// never reach the loop as requests: such files arrive as skipped jobs.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "ferry/error.h"
#include "ferry/manifest.h"
#include "ferry/run.h"
#include "plan/job.h"

namespace ferry {

class DestinationGuard;
class FileHasher;
class Journal;

class Planner {
 public:
  static constexpr size_t kWakeBatch = 64;
  static constexpr std::chrono::milliseconds kWakeDelay{20};

  struct Options {
    Operation op = Operation::kGet;
    SyncLevel sync = SyncLevel::kNone;
    std::string manifest;
    ManifestFormat format = ManifestFormat::kFerry;
    std::string base_url;
    std::string local_dir;  // without a trailing '/'
    size_t queue_capacity = 1024;
    // What an earlier, unfinished download run left; may be null.
    const Journal* journal = nullptr;
    // Downloads of at least this many bytes (by the manifest's size) are
    // fetched in ranges on several streams at once; 0: never.
    uint64_t split_above = 0;
  };

  // `wake` is called (from the planner's thread) after a push when the
  // consumer said it was waiting; it must be thread-safe. A job that needs
  // a request, and the end of the plan, wake the consumer at once; jobs
  // the planner decided (skipped, or failed before any request) wake it
  // once kWakeBatch of them wait, or at the first push after the oldest
  // has waited kWakeDelay, so that a run of them costs the consumer one
  // wake-up, not one per file. While the planner is slow on one entry (a
  // checksum of a large file), decided jobs before it wait unannounced.
  Planner(Options options, std::function<void()> wake, spdlog::logger* log);
  ~Planner();  // stops and joins the thread

  void Start();

  // The consumer's side: a job, or nullopt when none is ready now. The
  // last job has end_of_plan set.
  std::optional<Job> TryPop();

  // Asks to be woken by a later push, as the constructor says. Call it,
  // then TryPop() once more, before sleeping: a push between the two is
  // not lost.
  void WantWakeup() { consumer_waiting_.store(true); }

  // Stops planning early and waits for the thread to exit, even when it
  // was blocked on a full queue. Jobs not yet taken are dropped.
  void Stop();

  // A read error met after the manifest was checked (it changed under us).
  const std::optional<Error>& error() const { return error_; }

  // The job for one manifest entry; public for tests.
  Job Plan(const ManifestEntry& entry) const;

  // The files an upload's manifest names once its recursive entries are
  // expanded from the local tree.
  [[nodiscard]] Status CountFiles(uint64_t* files) const;

 private:
  void Run();
  bool Push(Job job);  // false once stopped
  // Whether the push of a job that needs no request, leaving `queued`
  // jobs, wakes a waiting consumer (see the constructor).
  bool Announce(size_t queued);
  void DecideLocally(Job& job) const;
  void MarkRepeat(Job& job);
  // True when an earlier run finished the download; notes the bytes it
  // kept when it left the file partial.
  bool FinishedEarlier(Job& job) const;
  std::string LocalPath(const std::string& path) const;
  // Calls `fn` with an entry for every file below a recursive entry's
  // local folder, or once with a failed job when the folder cannot be
  // listed; false when `fn` asked to stop.
  using EntryFn = std::function<bool(const ManifestEntry&, Job* failed)>;
  bool Expand(const ManifestEntry& folder, const EntryFn& fn) const;

  Options options_;
  std::string root_url_;  // the base URL's scheme and host, for '/' paths
  std::function<void()> wake_;
  spdlog::logger* log_;
  // Hashes local files for the checksum level of a download, and the
  // bytes an earlier run kept; used on the planner's thread only.
  FileHasher& LocalHasher() const;
  mutable std::unique_ptr<FileHasher> hasher_;  // made by LocalHasher()
  // Keeps a download's files inside local_dir when links on disk lead
  // elsewhere; used on the planner's thread only.
  std::unique_ptr<DestinationGuard> guard_;
  // Every destination (uploads: every URL) planned so far, by a digest of
  // it, with its line and a digest of the whole entry; planner thread only.
  struct SeenKey {
    uint64_t line;
    uint64_t entry;
  };
  std::unordered_map<uint64_t, SeenKey> seen_;
  std::string entry_bytes_;  // MarkRepeat's scratch; planner thread only

  std::mutex mutex_;
  std::condition_variable not_full_;  // signalled by TryPop and Stop
  std::deque<Job> queue_;             // guarded by mutex_
  bool stopped_ = false;              // guarded by mutex_

  std::atomic<bool> consumer_waiting_{false};
  // When the oldest push not yet announced to the consumer happened;
  // planner thread only.
  std::optional<Clock::time_point> unannounced_since_;
  std::thread thread_;
  std::optional<Error> error_;  // written by the thread before its last push
};

}  // namespace ferry
