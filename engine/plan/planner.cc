#include "plan/planner.h"

#include "ferry/manifest.h"
#include "ferry/url.h"

namespace ferry {

Planner::Planner(Options options, std::function<void()> wake)
    : options_(std::move(options)), wake_(std::move(wake)) {}

Planner::~Planner() { Stop(); }

void Planner::Start() {
  thread_ = std::thread([this] { Run(); });
}

std::optional<Job> Planner::TryPop() {
  std::optional<Job> job;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return job;
    job = std::move(queue_.front());
    queue_.pop_front();
  }
  not_full_.notify_one();
  return job;
}

void Planner::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    queue_.clear();
  }
  not_full_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Planner::Push(Job job) {
  {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [this] {
      return stopped_ || queue_.size() < options_.queue_capacity;
    });
    if (stopped_) return false;
    queue_.push_back(std::move(job));
  }
  if (consumer_waiting_.exchange(false)) wake_();
  return true;
}

void Planner::Run() {
  ManifestReader reader;
  if (Status s = reader.Open(options_.manifest); !s.ok()) {
    error_ = s.error();
  } else {
    ManifestEntry entry;
    while (reader.Next(&entry)) {
      Job job;
      job.url = FileUrl(options_.base_url, entry.path);
      job.dest = options_.dest_dir + "/" + entry.path;
      job.path = std::move(entry.path);
      job.size = entry.size;
      job.xxh128 = entry.xxh128;
      job.line = entry.line;
      if (!Push(std::move(job))) return;
    }
    error_ = reader.error();
  }
  Job end;
  end.end_of_plan = true;
  Push(std::move(end));
}

}  // namespace ferry
