#include "transport/transfer_loop.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/stat.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

#include "disk/range_file.h"
#include "transport/curl_errors.h"
#include "transport/probe.h"
#include "verify/file_hasher.h"

namespace ferry {
namespace {

// Bytes of an error body kept for the message.
constexpr size_t kMaxErrorBody = 1024;
constexpr int kMaxPollMs = 1000;
// How often downloads in flight note their written length in the journal,
// and how often the journal goes to stable storage.
constexpr auto kCheckpointEvery = std::chrono::seconds(1);
constexpr auto kJournalSyncEvery = std::chrono::seconds(5);
// Downloads shorter than this are not worth a checkpoint.
constexpr uint64_t kCheckpointBytes = 4 << 20;

// The first byte of "bytes FIRST-LAST/TOTAL", and TOTAL (0 when "*").
bool ParseContentRange(const std::string& value, uint64_t* first,
                       uint64_t* total) {
  unsigned long long a = 0, b = 0, t = 0;
  if (std::sscanf(value.c_str(), "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
    *first = a;
    *total = t;
    return true;
  }
  if (std::sscanf(value.c_str(), "bytes %llu-%llu/*", &a, &b) == 2) {
    *first = a;
    *total = 0;
    return true;
  }
  return false;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The statuses that mean a request did what it was asked. A GET that
// continues kept bytes asked for a range.
bool Succeeded(Step step, long status, bool ranged) {
  switch (step) {
    case Step::kGet:
      return status == 200 || (ranged && status == 206);
    case Step::kHashRemote:
    case Step::kHead:
      return status == 200;
    case Step::kPut:
      return status == 200 || status == 201 || status == 204;
    case Step::kDelete:
      return status == 200 || status == 202 || status == 204;
  }
  return false;
}

// Steps whose response body is the file.
bool WantsBody(Step step) {
  return step == Step::kGet || step == Step::kHashRemote;
}

// The end of a split download, on a worker: cuts its file to size (O_DIRECT
// may have padded it), hashes it, and renames it when the digest is the
// manifest's; otherwise removes it.
Status CommitSplitFile(const std::string& local, uint64_t size,
                       const std::optional<Digest128>& expected,
                       FileHasher& hasher, std::optional<Digest128>* digest) {
  const std::string part = PartPathFor(local);
  Status status = TrimRangeFile(local, size);
  if (status.ok()) {
    HashedFile hashed;
    hasher.Hash(part.c_str(), /*follow=*/false, /*digest=*/true, size, &hashed);
    if (hashed.err != 0) {
      status = ErrorFromErrno(
          hashed.err, std::string("cannot ") + hashed.step + " " + part);
    } else if (!hashed.hashed || hashed.size != size) {
      status = Error(
          ErrorCode::kLocalIo, RetryClass::kPermanent,
          fmt::format("{} holds {} bytes, not {}", part, hashed.size, size));
    } else if (expected && *expected != hashed.digest) {
      status = Error(ErrorCode::kChecksum, RetryClass::kPermanent,
                     fmt::format("xxh128 {} differs from the manifest's {}",
                                 hashed.digest.ToHex(), expected->ToHex()));
    } else {
      *digest = hashed.digest;
      status = CommitRangeFile(local);
    }
  }
  if (!status.ok()) RemoveRangeFile(local);
  return status;
}

}  // namespace

struct TransferLoop::Stream {
  TransferLoop* loop = nullptr;
  uint64_t index = 0;  // in streams_, the disk reader's cookie
  CURL* easy = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};

  Job job;
  long status = 0;  // HTTP status, known once the body starts
  uint64_t bytes = 0;
  Hasher hasher;
  std::optional<Digest128> sent_digest;      // uploads: once all is read
  std::optional<DiskWriter::FileId> file;    // downloads
  std::optional<DiskReader::FileId> source;  // uploads
  bool added = false;   // the handle is in the multi handle
  bool paused = false;  // an upload waits for the disk reader
  bool chunk_hashed = false;
  bool rate_paused = false;          // waits for --max-rate
  std::optional<Error> local_error;  // why a callback stopped the transfer
  std::string error_body;
  std::string retry_after;
  std::string etag;
  std::string content_range;
  uint64_t kept_before = 0;    // bytes kept when the attempt started
  bool ranged = false;         // the request asked for the bytes after job.kept
  bool resumed = false;        // the answer continues them
  uint64_t checkpointed = 0;   // written length last journaled
  bool range_refused = false;  // a range was answered with the whole file
  curl_slist* range_headers = nullptr;  // If-Range and the usual ones
};

struct TransferLoop::Attempt {
  Job job;
  uint64_t bytes = 0;
  long http_status = 0;
  bool absent = false;  // 404 where that is an answer, not an error
  std::optional<uint64_t> remote_size;
  int64_t remote_mtime = -1;  // seconds since the epoch; -1 unknown
  std::string content_type;
  std::optional<Digest128> digest;
  std::optional<Error> error;
  // For a failed attempt: what the policy decided when the transfer ended,
  // the bytes the download keeps on disk and their digest state.
  RetryDecision decision;
  bool decided = false;
  bool resumed = false;
  uint64_t kept = 0;
  uint64_t total = 0;
  std::string etag;
  std::shared_ptr<Hasher> kept_hash;
  bool range_refused = false;
};

struct TransferLoop::Split {
  Job job;  // the whole file
  uint64_t size = 0;
  uint64_t next = 0;     // the first byte no range has asked for yet
  uint64_t arrived = 0;  // bytes of the ranges that arrived
  int in_flight = 0;     // ranges started or waiting for a retry
  int requests = 0;      // range requests, all told
  bool busy = false;     // a worker has its file
  bool whole = false;    // the collection ignored a range
  std::optional<Error> error;
};

// Worker threads for the blocking steps of split downloads, and what they
// finished, for the loop to collect.
struct TransferLoop::Background {
  struct Done {
    uint64_t split = 0;
    bool created = false;  // else committed or removed
    Status status;
    std::optional<Digest128> digest;
  };

  tbb::task_arena arena;
  tbb::enumerable_thread_specific<std::unique_ptr<FileHasher>> hashers;
  std::mutex mu;
  std::condition_variable idle;
  std::vector<Done> done;
  int running = 0;
  std::function<void()> wake;

  explicit Background(std::function<void()> wake_loop)
      : wake(std::move(wake_loop)) {}

  // Runs `work` on a worker; what it returns is collected by the loop,
  // which is woken for it.
  template <typename Work>
  void Run(Work work) {
    {
      std::lock_guard lock(mu);
      ++running;
    }
    arena.enqueue([this, work = std::move(work)] {
      Done d = work();
      {
        std::lock_guard lock(mu);
        done.push_back(std::move(d));
      }
      wake();
      // Last: once nothing runs, the loop may be destroyed.
      std::lock_guard lock(mu);
      --running;
      idle.notify_all();
    });
  }
  FileHasher& Hasher() {
    auto& h = hashers.local();
    if (!h) h = std::make_unique<FileHasher>();
    return *h;
  }
  ~Background() {
    std::unique_lock lock(mu);
    idle.wait(lock, [this] { return running == 0; });
  }
};

TransferLoop::TransferLoop(const RunOptions& options, Planner* planner,
                           DiskWriter* disk, DiskReader* reader,
                           Journal* journal, Report* report,
                           spdlog::logger* log)
    : options_(options),
      planner_(planner),
      disk_(disk),
      reader_(reader),
      journal_(journal),
      report_(report),
      log_(log),
      policy_(options.retry, std::random_device{}()),
      limiter_(options.max_requests),
      rate_(options.max_rate),
      concurrency_(std::max(1, options.streams)),
      background_(std::make_unique<Background>([this] { Wake(); })) {
  // Whole blocks, so that ranges start where O_DIRECT may write.
  constexpr uint64_t kRangeUnit = 64 << 10;
  range_size_ =
      std::max(kRangeUnit, options.range_size / kRangeUnit * kRangeUnit);
  direct_io_ = options.direct_io;
  // The OPTIONS probe that opened the run was a request too.
  limiter_.Started(Clock::now());
}

TransferLoop::~TransferLoop() {
  background_.reset();  // waits for work that may still wake the loop
  for (auto& s : streams_) {
    if (s->easy == nullptr) continue;
    if (multi_ != nullptr) curl_multi_remove_handle(multi_, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->range_headers);
  }
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  curl_slist_free_all(headers_);
  curl_slist_free_all(put_headers_);
  for (curl_slist* list : retired_headers_) curl_slist_free_all(list);
}

Status TransferLoop::Init() {
  multi_ = curl_multi_init();
  if (multi_ == nullptr) {
    return Error(ErrorCode::kInternal, RetryClass::kStopRun,
                 "curl_multi_init failed");
  }
  const long streams = std::max(1, options_.streams);
  const long connections =
      options_.http1 ? streams
                     : std::clamp<long>(options_.connections, 1, streams);
  // Enough streams per connection that `connections` of them carry all
  // transfers; libcurl opens another connection when one is full.
  const long per_connection = (streams + connections - 1) / connections;
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING,
                    options_.http1 ? CURLPIPE_NOTHING : CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
  curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS, per_connection);

  if (options_.token_source) {
    SetAuthorization(options_.token_source->Current(&source_generation_));
  } else {
    SetAuthorization(options_.token);
  }

  for (long i = 0; i < streams; ++i) {
    auto s = std::make_unique<Stream>();
    s->loop = this;
    s->index = static_cast<uint64_t>(i);
    s->easy = curl_easy_init();
    if (s->easy == nullptr) {
      return Error(ErrorCode::kInternal, RetryClass::kStopRun,
                   "curl_easy_init failed");
    }
    ConfigureHandle(*s);
    idle_streams_.push_back(s.get());
    streams_.push_back(std::move(s));
  }
  return {};
}

// The header lists every request sends. Lists replaced here stay alive
// until the loop ends: transfers in flight still point at them.
void TransferLoop::SetAuthorization(const std::string& token) {
  token_ = token;
  for (curl_slist** list : {&headers_, &put_headers_}) {
    if (*list != nullptr) retired_headers_.push_back(*list);
    *list = nullptr;
    // Without this header a collection answers a refused request with a
    // redirect to its login page instead of 401/403.
    *list = curl_slist_append(*list, "X-Requested-With: XMLHttpRequest");
    if (!token.empty()) {
      *list =
          curl_slist_append(*list, ("Authorization: Bearer " + token).c_str());
    }
  }
  // An upload's body goes at once; waiting for "100 Continue" would cost
  // a round trip per file.
  put_headers_ = curl_slist_append(put_headers_, "Expect:");
}

// Asks for a fresh token once the collection refused the current one;
// true when there is one, which the next requests send.
bool TransferLoop::RefreshToken() {
  std::string fresh;
  if (options_.token_source) {
    fresh = options_.token_source->Renew(token_);
  } else if (options_.refresh_token) {
    fresh = options_.refresh_token();
  }
  if (fresh.empty() || fresh == token_) return false;
  SetAuthorization(fresh);
  ++token_generation_;
  policy_.OnTokenRefreshed(token_generation_);
  log_->warn(
      "the collection refused the token; using the fresh one from "
      "now on");
  return true;
}

// A token renewed ahead of its expiry goes with every request that starts
// from now on; transfers in flight keep the one they started with.
void TransferLoop::AdoptRenewedToken() {
  if (!options_.token_source ||
      options_.token_source->generation() == source_generation_) {
    return;
  }
  std::string fresh = options_.token_source->Current(&source_generation_);
  if (fresh.empty() || fresh == token_) return;
  SetAuthorization(fresh);
  ++token_generation_;
  policy_.OnTokenRefreshed(token_generation_);
}

// Options that stay the same for every transfer of the run: set once per
// handle, which is then reused for request after request.
void TransferLoop::ConfigureHandle(Stream& s) {
  CURL* e = s.easy;
  SetConnectionOptions(e, options_);
  curl_easy_setopt(e, CURLOPT_PRIVATE, &s);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s.error_buffer);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &TransferLoop::OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &TransferLoop::OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, &TransferLoop::OnRead);
  curl_easy_setopt(e, CURLOPT_READDATA, &s);
  // Wait for a connection that multiplexes rather than race to open more.
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  // A stall is detected by speed, never by a whole-transfer timeout that
  // a large file would run into.
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(options_.retry.stall.count()));
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16L * 1024);
  curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
  // Parse Last-Modified, for the mtime sync level.
  curl_easy_setopt(e, CURLOPT_FILETIME, 1L);
}

void TransferLoop::SetRequest(Stream& s) {
  CURL* e = s.easy;
  curl_easy_setopt(e, CURLOPT_URL, s.job.url.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nullptr);
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(e, CURLOPT_RANGE, nullptr);
  curl_slist_free_all(s.range_headers);
  s.range_headers = nullptr;
  s.job.token_generation = token_generation_;
  switch (s.job.step) {
    case Step::kGet:
      if (s.job.is_range()) {
        s.ranged = true;
        curl_easy_setopt(e, CURLOPT_RANGE,
                         fmt::format("{}-{}", s.job.range_first,
                                     s.job.range_first + s.job.range_length - 1)
                             .c_str());
      } else if (s.job.kept) {
        // Only the bytes after those kept, and only from the same file:
        // with If-Range a changed file comes back whole (200).
        s.ranged = true;
        curl_easy_setopt(e, CURLOPT_RANGE,
                         fmt::format("{}-", s.job.kept->length).c_str());
        if (!s.job.kept->etag.empty()) {
          for (curl_slist* h = headers_; h != nullptr; h = h->next) {
            s.range_headers = curl_slist_append(s.range_headers, h->data);
          }
          s.range_headers = curl_slist_append(
              s.range_headers, ("If-Range: " + s.job.kept->etag).c_str());
          curl_easy_setopt(e, CURLOPT_HTTPHEADER, s.range_headers);
        }
      }
      break;
    case Step::kHashRemote:
      break;
    case Step::kHead:
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
      break;
    case Step::kDelete:
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
      break;
    case Step::kPut:
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, put_headers_);
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      break;
  }
}

void TransferLoop::Wake() { curl_multi_wakeup(multi_); }

void TransferLoop::Run() {
  auto on_disk = [this](uint64_t cookie, const Status& status) {
    OnDiskDone(cookie, status);
  };
  auto on_read = [this](uint64_t cookie) { OnReaderReady(cookie); };
  for (;;) {
    Clock::time_point now = Clock::now();
    if (options_.interrupt != nullptr && options_.interrupt->load() &&
        !stopping_) {
      Abandon(
          Error(ErrorCode::kInterrupted, RetryClass::kStopRun, "interrupted"));
    }
    const auto deadline = options_.retry.deadline;
    if (deadline.count() > 0 && now - run_start_ >= deadline && !stopping_) {
      Abandon(Error(ErrorCode::kTimeout, RetryClass::kStopRun,
                    fmt::format("the run's deadline of {} s has passed",
                                deadline.count())));
    }

    // Start what can start: due retries first, then new jobs; and let
    // the transfers the rate limit paused go on when it allows.
    DrainBackground();
    AdoptRenewedToken();
    Admit(now);
    ResumeRatePaused(now);
    if (disk_ != nullptr) disk_->Submit();
    if (reader_ != nullptr) reader_->Submit();

    // Let curl move bytes and report the transfers that ended.
    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Stream* s = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
      OnTransferDone(*s, msg->data.result);
    }

    // Files the disk has finished with, and uploads it has bytes for.
    if (disk_ != nullptr) {
      disk_->Poll(on_disk);
      disk_->Submit();
    }
    if (reader_ != nullptr) {
      reader_->Poll(on_read);
      reader_->Submit();
    }
    report_->Tick(Clock::now());
    concurrency_.Tick(Clock::now(), report_->moved(), requests_ended_);
    Checkpoint(Clock::now());
    // Streams that ended above take their next files (or learn that there
    // are none) now: nothing else would wake the wait below for them (an
    // upload leaves no disk work behind whose completion would).
    Admit(Clock::now());
    if (disk_ != nullptr) disk_->Submit();
    if (reader_ != nullptr) reader_->Submit();
    if (Finished()) break;

    // Wait for sockets, the rings, a due retry or a new job.
    curl_waitfd fds[2];
    unsigned nfds = 0;
    if (disk_ != nullptr) {
      fds[nfds++] = {disk_->event_fd(), CURL_WAIT_POLLIN, 0};
    }
    if (reader_ != nullptr) {
      fds[nfds++] = {reader_->event_fd(), CURL_WAIT_POLLIN, 0};
    }
    curl_multi_poll(multi_, fds, nfds, PollTimeoutMs(Clock::now()), nullptr);
  }
  report_->SetHeld(policy_.held(), limiter_.held(), rate_.held());
  report_->SetStreamsCut(concurrency_.lowest(), concurrency_.cuts());
}

bool TransferLoop::HasRoom() const {
  const size_t in_flight = streams_.size() - idle_streams_.size();
  return !idle_streams_.empty() &&
         in_flight < static_cast<size_t>(concurrency_.limit());
}

// Whether fewer requests are in flight than the run has connections, a
// split file not yet under way counting as the streams it will take. Only
// then do ranges pay: a file alone on its stream is held to one stream's
// window (and, over HTTP/1.1, to one connection), while many transfers
// already fill the connections, and ranges cost the file's reading back
// for its digest.
bool TransferLoop::FewInFlight() const {
  size_t busy = streams_.size() - idle_streams_.size();
  for (const auto& [id, split] : splits_) {
    if (split->next == 0 && !split->whole && !split->error) {
      busy += static_cast<size_t>(std::max(1, options_.streams_per_file));
    }
  }
  const size_t connections =
      options_.http1 ? static_cast<size_t>(concurrency_.limit())
                     : static_cast<size_t>(std::max(1, options_.connections));
  return busy < connections;
}

bool TransferLoop::Finished() const {
  bool no_more_jobs =
      (plan_done_ && delayed_.empty() && unblocked_.empty()) || stopping_;
  return no_more_jobs && splits_.empty() &&
         idle_streams_.size() == streams_.size() && disk_pending_ == 0 &&
         (disk_ == nullptr || disk_->idle()) &&
         (reader_ == nullptr || reader_->idle());
}

int TransferLoop::PollTimeoutMs(Clock::time_point now) {
  long curl_ms = -1;
  curl_multi_timeout(multi_, &curl_ms);
  long ms = curl_ms < 0 ? kMaxPollMs : std::min<long>(curl_ms, kMaxPollMs);
  if (!delayed_.empty() && HasRoom()) {
    auto due = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(delayed_.begin()->first, policy_.hold_until()) - now);
    ms = std::clamp<long>(static_cast<long>(due.count()), 0, ms);
  }
  if (!unblocked_.empty() && HasRoom() && policy_.MayRetry(now)) {
    auto due = std::chrono::duration_cast<std::chrono::milliseconds>(
        limiter_.NextStart() - now);
    // Round up: woken a little early, the limit would still say no.
    long wait = limiter_.MayStart(now) ? 0 : static_cast<long>(due.count()) + 1;
    ms = std::clamp<long>(wait, 0, ms);
  }
  if (!rate_paused_.empty()) {
    auto due =
        std::chrono::ceil<std::chrono::milliseconds>(rate_.NextMove() - now);
    ms = std::clamp<long>(static_cast<long>(due.count()), 0, ms);
  }
  return static_cast<int>(ms);
}

// Due retries first, then files that go on to their next request, then
// new files; the retry policy may hold back the first two (a server asked
// to wait) or only the last (too many files are failing).
std::optional<Job> TransferLoop::NextJob(Clock::time_point now) {
  if (!policy_.MayRetry(now)) return std::nullopt;
  if (!delayed_.empty() && delayed_.begin()->first <= now) {
    Job job = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    return job;
  }
  if (!unblocked_.empty()) {
    Job job = std::move(unblocked_.front());
    unblocked_.pop_front();
    return job;
  }
  // Files under way before new ones.
  if (std::optional<Job> range = NextRange()) return range;
  while (!plan_done_ && policy_.MayStartFile(now)) {
    std::optional<Job> job = planner_->TryPop();
    if (!job) {
      // Ask to be woken, then look once more so a push in between is
      // not missed.
      planner_->WantWakeup();
      job = planner_->TryPop();
      if (!job) return std::nullopt;
    }
    if (job->end_of_plan) {
      plan_done_ = true;
      if (planner_->error()) StopRun(*planner_->error());
      continue;
    }
    // A file the planner decided on sends nothing and claims nothing.
    if (job->error || !job->skip_reason.empty() || ClaimKey(*job)) return job;
  }
  return std::nullopt;
}

// Two different entries for one destination must not be worked on at the
// same time: the later one waits until the earlier one has ended.
bool TransferLoop::ClaimKey(Job& job) {
  const std::string& key = job.key();
  auto [it, claimed] = busy_keys_.try_emplace(key);
  if (claimed) return true;
  log_->warn(
      "{:?}: line {} names the same {} as an earlier line; handled "
      "after it",
      job.path, job.line, job.download ? "destination" : "file");
  it->second.push_back(std::move(job));
  return false;
}

void TransferLoop::ReleaseKey(const std::string& key) {
  auto it = busy_keys_.find(key);
  if (it == busy_keys_.end()) return;
  if (it->second.empty()) {
    busy_keys_.erase(it);
    return;
  }
  unblocked_.push_back(std::move(it->second.front()));
  it->second.erase(it->second.begin());
}

void TransferLoop::Admit(Clock::time_point now) {
  // A full buffer pool means the disk is behind: let it catch up before
  // starting more files.
  auto disk_busy = [this] {
    return (disk_ != nullptr && disk_->over_budget()) ||
           (reader_ != nullptr && reader_->over_budget());
  };
  // Streams waiting for --max-rate: the run has all the transfers the
  // rate needs, and a new one would only buffer what it cannot take yet.
  auto over_rate = [this] { return !rate_paused_.empty(); };
  while (!stopping_ && HasRoom() && !disk_busy() && !over_rate()) {
    std::optional<Job> job = NextJob(now);
    if (!job) return;
    // Decided by the planner: nothing to send, and no key to release.
    if (job->error || !job->skip_reason.empty()) {
      FileResult result;
      result.path = &job->path;
      result.attempts = 0;
      if (job->error) {
        log_->error("{:?}: {}", job->path, job->error->message());
        result.outcome = Outcome::kFailed;
        result.error = &*job->error;
      } else {
        log_->info("{:?}: skipped ({})", job->path, job->skip_reason);
        result.outcome = Outcome::kSkipped;
        result.reason = &job->skip_reason;
      }
      report_->FileDone(result);
      continue;
    }
    if (job->in_ranges && job->step == Step::kGet && !ranges_refused_ &&
        !job->kept) {
      if (FewInFlight()) {
        StartSplit(std::move(*job));
        continue;
      }
      job->in_ranges = false;  // other transfers keep the connections busy
    }
    if (!limiter_.MayStart(now)) {
      unblocked_.push_front(std::move(*job));  // first when the limit allows
      return;
    }
    limiter_.Started(now);
    Stream* s = idle_streams_.back();
    idle_streams_.pop_back();
    Start(*s, std::move(*job));
  }
}

void TransferLoop::Start(Stream& s, Job job) {
  s.job = std::move(job);
  if (s.job.attempts++ == 0 && s.job.first_start == Clock::time_point()) {
    s.job.first_start = Clock::now();
  }
  s.status = 0;
  s.bytes = 0;
  s.hasher.Reset();
  s.sent_digest.reset();
  s.file.reset();
  s.source.reset();
  s.paused = false;
  s.chunk_hashed = false;
  s.rate_paused = false;
  s.local_error.reset();
  s.error_body.clear();
  s.retry_after.clear();
  s.etag.clear();
  s.content_range.clear();
  s.ranged = false;
  s.resumed = false;
  s.checkpointed = 0;
  s.range_refused = false;
  s.error_buffer[0] = '\0';
  if (s.job.kept && s.job.kept->total != 0 &&
      s.job.kept->length >= s.job.kept->total) {
    s.job.kept.reset();  // nothing left to ask for: fetch it whole
  }
  s.kept_before = s.job.kept ? s.job.kept->length : 0;
  SetRequest(s);
  if (s.job.step == Step::kPut) {
    // The request starts when the first bytes are read (OnReaderReady).
    s.source = reader_->Begin(s.job.local, s.job.local_size, s.index);
    s.added = false;
    return;
  }
  curl_multi_add_handle(multi_, s.easy);
  s.added = true;
}

// The disk reader has news for an upload: its first bytes (the request
// can start), more bytes (a paused request can go on), or an error.
void TransferLoop::OnReaderReady(uint64_t cookie) {
  Stream& s = *streams_[cookie];
  if (!s.source) return;  // the upload ended meanwhile
  DiskReader::FileId id = *s.source;
  if (s.added) {
    if (s.paused) {
      s.paused = false;
      curl_easy_pause(s.easy, CURLPAUSE_CONT);
    }
    return;
  }
  if (const auto& error = reader_->error(id)) {
    s.local_error = *error;
    OnTransferDone(s, CURLE_ABORTED_BY_CALLBACK);
    return;
  }
  std::optional<uint64_t> size = reader_->size(id);
  if (!size || (reader_->Peek(id).empty() && !reader_->at_end(id))) return;
  curl_easy_setopt(s.easy, CURLOPT_INFILESIZE_LARGE,
                   static_cast<curl_off_t>(*size));
  curl_multi_add_handle(multi_, s.easy);
  s.added = true;
}

size_t TransferLoop::OnWrite(char* data, size_t size, size_t count,
                             void* user) {
  auto* s = static_cast<Stream*>(user);
  return s->loop->Receive(*s, data, size * count);
}

size_t TransferLoop::OnRead(char* data, size_t size, size_t count, void* user) {
  auto* s = static_cast<Stream*>(user);
  return s->loop->Send(*s, data, size * count);
}

size_t TransferLoop::OnHeader(char* data, size_t size, size_t count,
                              void* user) {
  auto* s = static_cast<Stream*>(user);
  size_t n = size * count;
  // A new response (after an interim one) starts over.
  if (n > 5 && strncasecmp(data, "HTTP/", 5) == 0) {
    s->retry_after.clear();
    s->etag.clear();
    s->content_range.clear();
  }
  auto take = [&](std::string_view name, std::string* out) {
    if (n <= name.size() || strncasecmp(data, name.data(), name.size()) != 0) {
      return;
    }
    std::string value(data + name.size(), n - name.size());
    auto first = value.find_first_not_of(" \t");
    auto last = value.find_last_not_of(" \t\r\n");
    *out =
        first == std::string::npos ? "" : value.substr(first, last - first + 1);
  };
  take("retry-after:", &s->retry_after);
  take("etag:", &s->etag);
  take("content-range:", &s->content_range);
  return n;
}

// Starts the download's file at its first byte of body: a 206 continues
// the kept bytes, a 200 (the collection ignored the range, or the file
// changed) starts afresh.
bool TransferLoop::BeginFile(Stream& s) {
  uint64_t resume_at = 0;
  if (s.ranged && s.status == 206) {
    uint64_t first = 0, total = 0;
    const Job::Kept& kept = *s.job.kept;
    bool parsed = ParseContentRange(s.content_range, &first, &total);
    if (parsed && kept.total != 0 && total != 0 && total != kept.total) {
      s.local_error = Error(
          ErrorCode::kTruncated, RetryClass::kTransient,
          fmt::format("the file changed on the collection since its first "
                      "bytes arrived ({} bytes then, {} now); starting over",
                      kept.total, total));
      s.job.kept.reset();
      return false;
    }
    if (!parsed || first != kept.length) {
      s.local_error = Error(
          ErrorCode::kTruncated, RetryClass::kTransient,
          fmt::format("asked for the bytes from {}, got '{}'; starting over",
                      kept.length, s.content_range));
      s.job.kept.reset();
      return false;
    }
    resume_at = kept.length;
    s.hasher.CopyFrom(*kept.hash);
    s.bytes = kept.length;
    s.resumed = true;
  } else if (s.ranged) {
    log_->debug("{:?}: the collection sent the whole file; starting over",
                s.job.path);
    s.job.kept.reset();
  }
  DiskWriter::FileId id;
  if (Status st = disk_->Begin(s.job.local, resume_at, 0, &id); !st.ok()) {
    s.local_error = st.error();
    return false;
  }
  s.file = id;
  curl_off_t announced = -1;
  curl_easy_getinfo(s.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  if (s.job.size) {
    disk_->ExpectEnd(id, *s.job.size);
  } else if (announced >= 0) {
    disk_->ExpectEnd(id, resume_at + static_cast<uint64_t>(announced));
  }
  return true;
}

// Starts writing a range at its offset, once the answer says it is the
// range asked for, of a file of the size expected.
bool TransferLoop::BeginRange(Stream& s) {
  uint64_t first = 0, total = 0;
  const Split& split = *splits_.at(s.job.split);
  if (!ParseContentRange(s.content_range, &first, &total) ||
      first != s.job.range_first || (total != 0 && total != split.size)) {
    s.local_error =
        Error(ErrorCode::kTruncated, RetryClass::kTransient,
              fmt::format("asked for the {} bytes from {} of {}, got '{}'",
                          s.job.range_length, s.job.range_first, split.size,
                          s.content_range));
    return false;
  }
  DiskWriter::FileId id;
  if (Status st = disk_->BeginRange(s.job.local, first, direct_io_, 0, &id);
      !st.ok()) {
    s.local_error = st.error();
    return false;
  }
  s.file = id;
  disk_->ExpectEnd(id, first + s.job.range_length);
  return true;
}

size_t TransferLoop::Receive(Stream& s, const char* data, size_t size) {
  if (s.status == 0) {
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &s.status);
  }
  if (s.job.is_range() && s.status == 200) {
    // The whole file for a range: the collection ignores Range.
    s.range_refused = true;
    s.local_error = Error(ErrorCode::kHttp, RetryClass::kPermanent,
                          "the collection ignores Range requests");
    return 0;
  }
  const bool body = s.status == 200 ||
                    (s.status == 206 && s.ranged && s.job.step == Step::kGet);
  if (!WantsBody(s.job.step) || !body) {
    // An error page, or an answer to an upload or a delete: keep its
    // start for the message, never write it.
    size_t keep = std::min(
        size, kMaxErrorBody - std::min(kMaxErrorBody, s.error_body.size()));
    s.error_body.append(data, keep);
    return size;
  }
  if (PauseForRate(s, size)) return CURL_WRITEFUNC_PAUSE;
  report_->AddMoved(size);
  if (s.job.step == Step::kHashRemote) {
    s.hasher.Update(data, size);
    s.bytes += size;
    return size;
  }
  if (s.job.is_range()) {
    if (!s.file && !BeginRange(s)) return 0;
    if (s.bytes + size > s.job.range_length) {
      s.local_error = Error(ErrorCode::kTruncated, RetryClass::kTransient,
                            "the collection sends more than the range asked");
      return 0;
    }
    if (disk_->failed(*s.file)) return 0;
    disk_->Append(*s.file, data, size);
    s.bytes += size;
    return size;
  }
  if (!s.file && !BeginFile(s)) return 0;
  if (s.job.size && s.bytes + size > *s.job.size) {
    s.local_error = Error(ErrorCode::kSizeMismatch, RetryClass::kPermanent,
                          fmt::format("the collection sends more than the "
                                      "{} bytes the manifest gives",
                                      *s.job.size));
    return 0;
  }
  if (disk_->failed(*s.file)) return 0;  // the disk's error comes later
  s.hasher.Update(data, size);
  disk_->Append(*s.file, data, size);
  s.bytes += size;
  return size;
}

// Feeds an upload from the disk reader. Each chunk is hashed when it is
// first offered, so that the digest of the whole file is known before its
// last bytes leave: a file that no longer matches the manifest is stopped
// short, and the collection never receives a complete body.
size_t TransferLoop::Send(Stream& s, char* data, size_t size) {
  DiskReader::FileId id = *s.source;
  if (const auto& error = reader_->error(id)) {
    s.local_error = *error;
    return CURL_READFUNC_ABORT;
  }
  std::string_view ready = reader_->Peek(id);
  if (ready.empty()) {
    if (reader_->at_end(id)) return 0;
    s.paused = true;
    return CURL_READFUNC_PAUSE;
  }
  if (!s.chunk_hashed) {
    s.hasher.Update(ready.data(), ready.size());
    s.chunk_hashed = true;
    if (reader_->PeekIsLast(id)) {
      s.sent_digest = s.hasher.Final();
      if (s.job.xxh128 && *s.job.xxh128 != *s.sent_digest) {
        s.local_error = Error(
            ErrorCode::kChecksum, RetryClass::kPermanent,
            fmt::format("xxh128 {} differs from the manifest's {}: the file "
                        "changed since the manifest was made; not sent",
                        s.sent_digest->ToHex(), s.job.xxh128->ToHex()));
        return CURL_READFUNC_ABORT;
      }
    }
  }
  size_t n = std::min(size, ready.size());
  if (PauseForRate(s, n)) return CURL_READFUNC_PAUSE;
  std::memcpy(data, ready.data(), n);
  reader_->Consume(id, n);
  if (n == ready.size()) s.chunk_hashed = false;
  s.bytes += n;
  report_->AddMoved(n);
  return n;
}

// Whether `s` must wait before moving `bytes`, because the run has moved
// its --max-rate; if not, the bytes are counted against it.
bool TransferLoop::PauseForRate(Stream& s, size_t bytes) {
  if (!rate_.limited()) return false;
  Clock::time_point now = Clock::now();
  if (rate_.MayMove(now)) {
    rate_.Moved(bytes, now);
    return false;
  }
  if (!s.rate_paused) {
    s.rate_paused = true;
    rate_paused_.push_back(&s);
  }
  return true;
}

// Lets the streams paused for --max-rate go on once the bucket has
// tokens. Each may take a buffer's worth at once and pause again (its
// data arrives inside curl_easy_pause), so the first to go on changes
// from turn to turn.
void TransferLoop::ResumeRatePaused(Clock::time_point now) {
  if (rate_paused_.empty() || !rate_.MayMove(now)) return;
  std::vector<Stream*> paused;
  paused.swap(rate_paused_);
  const size_t n = paused.size();
  const size_t first = resume_first_++ % n;
  for (size_t i = 0; i < n; ++i) {
    Stream* s = paused[(first + i) % n];
    if (!s->rate_paused) continue;  // ended meanwhile
    s->rate_paused = false;
    // An upload waiting for the disk reader stays paused: its read
    // callback says so again.
    curl_easy_pause(s->easy, CURLPAUSE_CONT);
  }
}

std::optional<Error> TransferLoop::CheckResponse(Stream& s, CURLcode code) {
  if (s.local_error) return s.local_error;
  if (code == CURLE_WRITE_ERROR && s.file && disk_->failed(*s.file)) {
    return std::nullopt;  // the disk writer reports its own error
  }
  if (code == CURLE_OPERATION_TIMEDOUT &&
      std::strncmp(s.error_buffer, "Operation too slow", 18) == 0) {
    return Error(ErrorCode::kTimeout, RetryClass::kTransient,
                 fmt::format("stalled: no byte moved for {} s "
                             "(--stall-timeout)",
                             options_.retry.stall.count()));
  }
  if (code != CURLE_OK) return ErrorFromCurl(code, s.error_buffer);
  curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &s.status);
  if (s.ranged && s.status == 416) {
    // The kept bytes reach past the collection's file: it changed.
    s.job.kept.reset();
    return Error(ErrorCode::kTruncated, RetryClass::kTransient,
                 "the collection's file is shorter than the bytes kept from "
                 "an earlier attempt; starting over")
        .set_http_status(s.status);
  }
  if (!Succeeded(s.job.step, s.status, s.ranged)) {
    char* location = nullptr;
    curl_easy_getinfo(s.easy, CURLINFO_REDIRECT_URL, &location);
    Error error = ErrorFromHttpStatus(s.status, location ? location : "",
                                      s.error_body, s.retry_after);
    if (s.job.step == Step::kPut && (s.status == 403 || s.status == 404)) {
      // The collection may not create missing folders on upload.
      return Error(error.code(), error.retry_class(),
                   error.message() +
                       " (if the file's folder does not exist on the "
                       "collection yet, it may refuse to create it)")
          .set_http_status(s.status);
    }
    return error;
  }
  if (!WantsBody(s.job.step)) return std::nullopt;
  curl_off_t announced = -1;
  curl_easy_getinfo(s.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  const uint64_t received =
      s.bytes - (s.resumed ? s.job.kept->length : uint64_t{0});
  if (announced >= 0 && static_cast<uint64_t>(announced) != received) {
    return Error(ErrorCode::kTruncated, RetryClass::kTransient,
                 fmt::format("received {} bytes of the {} announced", received,
                             announced));
  }
  if (s.job.is_range() && s.bytes != s.job.range_length) {
    return Error(ErrorCode::kTruncated, RetryClass::kTransient,
                 fmt::format("received {} bytes of the range's {}", s.bytes,
                             s.job.range_length));
  }
  if (s.job.step == Step::kGet && s.job.size && *s.job.size != s.bytes) {
    return Error(ErrorCode::kSizeMismatch, RetryClass::kPermanent,
                 fmt::format("received {} bytes, the manifest gives {}",
                             s.bytes, *s.job.size));
  }
  return std::nullopt;
}

void TransferLoop::OnTransferDone(Stream& s, CURLcode code) {
  ++requests_ended_;
  if (s.added) curl_multi_remove_handle(multi_, s.easy);
  s.added = false;
  s.rate_paused = false;
  if (s.source) {
    reader_->End(*s.source);
    s.source.reset();
  }
  const Step step = s.job.step;
  Attempt a;
  if (code == CURLE_OK && !s.local_error) {
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &s.status);
  }
  // For these a missing file is an answer, not a failure.
  if (code == CURLE_OK && !s.local_error && s.status == 404 &&
      (step == Step::kHead || step == Step::kDelete)) {
    a.absent = true;
  } else {
    a.error = CheckResponse(s, code);
  }
  a.http_status = s.status;
  a.bytes = s.bytes;
  a.range_refused = s.range_refused;
  if (!a.error && !a.absent && !s.job.is_range()) {
    switch (step) {
      case Step::kHead: {
        curl_off_t length = -1;
        curl_easy_getinfo(s.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        if (length >= 0) a.remote_size = static_cast<uint64_t>(length);
        char* type = nullptr;
        curl_easy_getinfo(s.easy, CURLINFO_CONTENT_TYPE, &type);
        if (type != nullptr) a.content_type = type;
        curl_off_t mtime = -1;
        curl_easy_getinfo(s.easy, CURLINFO_FILETIME_T, &mtime);
        a.remote_mtime = static_cast<int64_t>(mtime);
        break;
      }
      case Step::kHashRemote:
        a.digest = s.hasher.Final();
        break;
      case Step::kPut:
        a.digest = s.sent_digest ? *s.sent_digest : s.hasher.Final();
        break;
      case Step::kGet:
        if (s.file && disk_->failed(*s.file)) break;
        a.digest = s.hasher.Final();
        if (s.job.xxh128 && *s.job.xxh128 != *a.digest) {
          a.error =
              Error(ErrorCode::kChecksum, RetryClass::kPermanent,
                    fmt::format("xxh128 {} differs from the manifest's {}",
                                a.digest->ToHex(), s.job.xxh128->ToHex()));
        }
        break;
      case Step::kDelete:
        break;
    }
  }
  // An empty file has no bytes that would have created it.
  if (step == Step::kGet && !a.error && !s.file && code == CURLE_OK &&
      !s.job.is_range()) {
    DiskWriter::FileId id;
    if (Status st = disk_->Begin(s.job.local, 0, 0, &id); st.ok()) {
      s.file = id;
    } else {
      a.error = st.error();
    }
  }
  std::optional<DiskWriter::FileId> file = s.file;
  s.file.reset();
  // A range only closes its part of the file; the split renames it.
  DiskWriter::Ending ending = s.job.is_range() ? DiskWriter::Ending::kKeep
                                               : DiskWriter::Ending::kCommit;
  if (a.error || (file && disk_->failed(*file))) {
    ending = DiskWriter::Ending::kAbandon;
  }
  if (a.error && step == Step::kGet && !s.job.is_range()) {
    // What a download keeps: the bytes this attempt wrote, or, when it
    // wrote none, those an earlier one kept.
    a.resumed = s.resumed;
    a.etag = s.etag;
    if (file) {
      a.kept = s.bytes;
      a.kept_hash = std::make_shared<Hasher>();
      a.kept_hash->CopyFrom(s.hasher);
      a.total = WholeSize(s);
      if (s.resumed && a.etag.empty()) a.etag = s.job.kept->etag;
    } else if (s.job.kept) {
      a.kept = s.job.kept->length;
      a.total = s.job.kept->total;
      a.etag = s.job.kept->etag;
      a.kept_hash = std::make_shared<Hasher>();
      a.kept_hash->CopyFrom(*s.job.kept->hash);
    }
    // An attempt that moved the download forward is not held against it.
    a.decision = AskPolicy(*a.error, s.job, a, a.kept > s.kept_before);
    a.decided = true;
    // Kept for a later attempt, or for the same command run again.
    if (file && a.kept > 0 && a.decision.resume_from == a.kept &&
        !disk_->failed(*file)) {
      ending = DiskWriter::Ending::kKeep;
    } else if (a.decision.resume_from == 0) {
      a.kept = 0;
    }
  }
  a.job = std::move(s.job);
  idle_streams_.push_back(&s);

  if (!file) {
    EndAttempt(std::move(a));
    return;
  }
  // The attempt ends when the disk has renamed, kept or removed its file.
  uint64_t cookie;
  if (free_cookies_.empty()) {
    cookie = at_disk_.size();
    at_disk_.emplace_back();
  } else {
    cookie = free_cookies_.back();
    free_cookies_.pop_back();
  }
  at_disk_[cookie] = std::move(a);
  ++disk_pending_;
  disk_->SetCookie(*file, cookie);
  disk_->Finish(*file, ending);
}

void TransferLoop::OnDiskDone(uint64_t cookie, const Status& status) {
  Attempt a = std::move(*at_disk_[cookie]);
  at_disk_[cookie].reset();
  free_cookies_.push_back(cookie);
  --disk_pending_;
  // A local error explains a stopped transfer better than curl's word.
  if (!status.ok()) {
    a.error = status.error();
    a.kept = 0;
    a.decided = false;  // a different error: ask again
  }
  EndAttempt(std::move(a));
}

void TransferLoop::EndAttempt(Attempt a) {
  if (!a.error) {
    if (a.job.is_range()) {
      RangeEnded(a.job, RangeEnd::kArrived, nullptr);
    } else {
      Decide(a);
    }
    return;
  }
  Job& job = a.job;
  const Error& error = *a.error;
  job.last_error = error;
  if (a.range_refused) {
    RangeEnded(job, RangeEnd::kRefused, &error);
    return;
  }
  // Signs that the collection has more than it can serve: fewer
  // transfers at once.
  if (!stopping_ && (a.http_status == 429 || a.http_status == 503 ||
                     (error.code() == ErrorCode::kTimeout &&
                      error.retry_class() == RetryClass::kTransient))) {
    concurrency_.Overloaded(Clock::now());
  }
  RetryDecision next = a.decision;
  if (!a.decided) next = AskPolicy(error, job, a, /*progressed=*/false);
  if (next.action == RetryDecision::kRefreshToken) {
    if (!stopping_ && RefreshToken()) {
      next.action = RetryDecision::kRetry;
      next.not_before = Clock::now();
    } else {
      next.action = RetryDecision::kStopRun;
    }
  }
  if (next.action == RetryDecision::kRetry && !stopping_) {
    Retry(std::move(job), next, error, a);
    return;
  }
  // Once the run stops, the files still in flight fail for the same
  // reason; it was said once already.
  bool said = stopping_ && error.retry_class() == RetryClass::kStopRun;
  if (next.action == RetryDecision::kStopRun) StopRun(error);
  if (job.is_range()) {
    RangeEnded(job, RangeEnd::kFailed, &error);
    return;
  }
  if (a.kept > 0 && journal_ != nullptr) {
    // Left for the same command to continue.
    journal_->RecordPart(job.url, job.local, {a.kept, a.total, a.etag});
  }
  log_->log(said ? spdlog::level::debug : spdlog::level::err, "{:?}: {}",
            job.path, error.message());
  FileResult result;
  result.path = &job.path;
  result.outcome = Outcome::kFailed;
  result.bytes = a.bytes;
  result.http_status = a.http_status;
  result.attempts = job.attempts;
  result.seconds = SecondsSince(job.first_start);
  result.error = &error;
  Finish(job, result);
}

void TransferLoop::Retry(Job job, const RetryDecision& next, const Error& error,
                         const Attempt& a) {
  if (next.resume_from > 0) {
    Job::Kept kept;
    kept.length = next.resume_from;
    kept.total = a.total;
    kept.etag = a.etag;
    kept.hash = a.kept_hash;
    job.kept = std::move(kept);
    if (journal_ != nullptr) {
      journal_->RecordPart(job.url, job.local, {a.kept, a.total, a.etag});
    }
  } else {
    job.kept.reset();
  }
  if (!job.failing) {
    job.failing = true;
    policy_.FileFailing();
  }
  double wait =
      std::chrono::duration<double>(next.not_before - Clock::now()).count();
  std::string from = next.resume_from > 0
                         ? fmt::format(" from byte {}", next.resume_from)
                         : "";
  log_->warn("{:?}: attempt {}/{} failed: {}; retrying{} in {:.1f} s", job.path,
             job.attempts, policy_.options().max_attempts, error.message(),
             from, std::max(wait, 0.0));
  report_->AddRetry();
  if (next.resume_from > 0) report_->AddResumed();
  delayed_.emplace(next.not_before, std::move(job));
}

// What the retry policy makes of a failed attempt of `job`.
RetryDecision TransferLoop::AskPolicy(const Error& error, Job& job,
                                      const Attempt& a, bool progressed) {
  if (!progressed) ++job.fruitless;
  FailedAttempt failed;
  failed.attempt = job.attempts;
  failed.fruitless = job.fruitless;
  failed.kept_bytes = a.kept;
  failed.resumed = a.resumed;
  failed.token_generation = job.token_generation;
  return policy_.OnFailure(error, failed, Clock::now());
}

// The whole size of the file a download is receiving, as the collection
// announced it; 0 when it did not.
uint64_t TransferLoop::WholeSize(Stream& s) const {
  if (s.resumed) return s.job.kept->total;
  curl_off_t length = -1;
  curl_easy_getinfo(s.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  return length > 0 ? static_cast<uint64_t>(length) : 0;
}

// A download has its final name, or an upload arrived: a later run of the
// same command need not move it again while the local file stays as it is
// now.
void TransferLoop::RecordFinished(const Job& job) {
  if (journal_ == nullptr) return;
  struct stat st {};
  if (::lstat(job.local.c_str(), &st) != 0) return;
  journal_->RecordDone(job.url, job.local,
                       {static_cast<uint64_t>(st.st_size),
                        st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                        static_cast<uint64_t>(st.st_ino)});
}

// Notes in the journal how far each large download in flight has reached
// the file system, so that a kill loses little; and syncs the journal now
// and then.
void TransferLoop::Checkpoint(Clock::time_point now) {
  if (journal_ == nullptr || now < next_checkpoint_) return;
  next_checkpoint_ = now + kCheckpointEvery;
  for (auto& sp : streams_) {
    Stream& s = *sp;
    if (!s.file || s.job.step != Step::kGet || s.job.is_range()) continue;
    uint64_t written = disk_->written(*s.file);
    if (written < kCheckpointBytes || written == s.checkpointed) continue;
    s.checkpointed = written;
    journal_->RecordPart(s.job.url, s.job.local,
                         {written, WholeSize(s), s.etag});
  }
  bool sync = now >= next_journal_sync_;
  if (sync) next_journal_sync_ = now + kJournalSyncEvery;
  journal_->Flush(sync);
  if (journal_->write_error() && !said_journal_error_) {
    said_journal_error_ = true;
    log_->warn("{}; an interrupted run may fetch some files again",
               journal_->write_error()->message());
  }
}

// A request succeeded: the file is done, or the answer says what to do
// next (the sync levels that need the collection's side).
void TransferLoop::Decide(Attempt& a) {
  Job& job = a.job;
  FileResult result;
  result.path = &job.path;
  result.bytes = a.bytes;
  result.http_status = a.http_status;
  result.attempts = job.attempts;
  result.seconds = SecondsSince(job.first_start);

  auto then = [this, &job](Step step) {
    job.step = step;
    job.attempts = 0;
    job.fruitless = 0;
    unblocked_.push_front(std::move(job));
  };
  std::string reason;
  auto skip = [&](const char* why) {
    reason = why;
    result.outcome = Outcome::kSkipped;
    result.reason = &reason;
    log_->info("{:?}: skipped ({})", job.path, why);
    Finish(job, result);
  };
  auto unknown_mtime = [this] {
    if (said_no_mtime_) return;
    said_no_mtime_ = true;
    log_->warn(
        "the collection sends no modification times (Last-Modified), so "
        "--sync mtime cannot tell which side is newer: files are copied; "
        "--sync size or checksum can decide without them");
  };

  switch (job.step) {
    case Step::kGet:
    case Step::kPut:
      RecordFinished(job);
      result.xxh128 = a.digest;
      result.verified = job.xxh128.has_value();
      log_->info("{:?}: ok, {} bytes, {} attempt(s), {:.3f} s", job.path,
                 a.bytes, job.attempts, result.seconds);
      Finish(job, result);
      return;
    case Step::kDelete: {
      if (!a.absent) {
        log_->info("{:?}: deleted", job.path);
        Finish(job, result);
        return;
      }
      Error gone(ErrorCode::kHttp, RetryClass::kPermanent,
                 "already absent (HTTP 404)");
      result.outcome = options_.strict ? Outcome::kFailed : Outcome::kAbsent;
      if (options_.strict) {
        log_->error("{:?}: {}", job.path, gone.message());
        result.error = &gone;
      } else {
        log_->info("{:?}: already absent", job.path);
      }
      Finish(job, result);
      return;
    }
    case Step::kHashRemote:
      if (a.digest && job.xxh128 && *a.digest == *job.xxh128) {
        skip("same checksum");
      } else {
        then(Step::kPut);
      }
      return;
    case Step::kHead:
      break;
  }

  // A HEAD: list it, or compare the two sides.
  const bool upload = options_.op == Operation::kPut;
  if (options_.op == Operation::kStat) {
    result.outcome = a.absent ? Outcome::kAbsent : Outcome::kOk;
    result.remote_size = a.remote_size;
    result.content_type = a.content_type;
    Finish(job, result);
    return;
  }
  if (a.absent) {
    if (upload) {
      then(Step::kPut);
    } else {
      Error missing = ErrorFromHttpStatus(404, "", "", "");
      log_->error("{:?}: {}", job.path, missing.message());
      result.outcome = Outcome::kFailed;
      result.error = &missing;
      Finish(job, result);
    }
    return;
  }
  const Step transfer = upload ? Step::kPut : Step::kGet;
  const bool same_size = a.remote_size && *a.remote_size == job.local_size;
  switch (options_.sync) {
    case SyncLevel::kNone:
      then(transfer);
      return;
    case SyncLevel::kExists:
      skip("exists");
      return;
    case SyncLevel::kSize:
      if (same_size) {
        skip("same size");
      } else {
        then(transfer);
      }
      return;
    case SyncLevel::kMtime: {
      if (a.remote_mtime < 0) {
        unknown_mtime();
        then(transfer);
        return;
      }
      // Whole seconds: HTTP dates carry no more.
      bool dest_not_older = upload ? a.remote_mtime >= job.local_mtime
                                   : job.local_mtime >= a.remote_mtime;
      if (dest_not_older) {
        skip("not older");
      } else {
        then(transfer);
      }
      return;
    }
    case SyncLevel::kChecksum:
      if (same_size) {
        then(Step::kHashRemote);
      } else {
        then(transfer);
      }
      return;
  }
}

void TransferLoop::Finish(const Job& job, const FileResult& result) {
  FileResult with_history = result;
  if (job.last_error && result.error == nullptr) {
    with_history.last_error = &*job.last_error;
  }
  report_->FileDone(with_history);
  if (job.failing) policy_.FileRecovered();
  ReleaseKey(job.key());
}

// Abandons every transfer in flight: a download keeps what it has written
// (the journal says how much), an upload never completes, and the attempts
// end as failed through the usual path.
void TransferLoop::Abandon(const Error& error) {
  StopRun(error);
  for (auto& s : streams_) {
    if (std::find(idle_streams_.begin(), idle_streams_.end(), s.get()) !=
        idle_streams_.end()) {
      continue;
    }
    s->local_error = error;
    OnTransferDone(*s, CURLE_ABORTED_BY_CALLBACK);
  }
}

void TransferLoop::StopRun(const Error& error) {
  if (stopping_) return;
  stopping_ = true;
  stop_error_ = error;
  log_->error("stopping the run: {}", error.message());
  report_->StopRun(error);
  planner_->Stop();
  // Retries that were waiting will not run; count them as failed, and
  // leave the bytes they kept to the same command run again.
  for (auto& [when, job] : delayed_) {
    if (job.is_range()) {
      RangeEnded(job, RangeEnd::kFailed, &error);
      continue;
    }
    if (job.kept && journal_ != nullptr) {
      journal_->RecordPart(job.url, job.local,
                           {job.kept->length, job.kept->total, job.kept->etag});
    }
    if (job.failing) policy_.FileRecovered();
    FileResult result;
    result.path = &job.path;
    result.outcome = Outcome::kFailed;
    result.attempts = job.attempts;
    result.seconds = SecondsSince(job.first_start);
    result.error = &error;
    report_->FileDone(result);
  }
  delayed_.clear();
  // Split files with no range in flight end now; the others when their
  // last range does.
  std::vector<uint64_t> ids;
  for (const auto& [id, split] : splits_) ids.push_back(id);
  for (uint64_t id : ids) MaybeEndSplit(id);
}

// A download large enough to go in ranges: its temporary file is created
// at full size on a worker, then its ranges are handed out (NextRange).
void TransferLoop::StartSplit(Job job) {
  const uint64_t id = next_split_++;
  auto split = std::make_unique<Split>();
  split->size = *job.size;
  split->busy = true;
  if (job.first_start == Clock::time_point()) job.first_start = Clock::now();
  log_->debug("{:?}: {} bytes, fetched in ranges of {}", job.path, split->size,
              range_size_);
  const std::string local = job.local;
  const uint64_t size = split->size;
  split->job = std::move(job);
  splits_.emplace(id, std::move(split));
  background_->Run([id, local, size] {
    Background::Done done;
    done.split = id;
    done.created = true;
    done.status = CreateRangeFile(local, size);
    return done;
  });
}

// The next range to ask for, from the split files that have one and room
// for another stream.
std::optional<Job> TransferLoop::NextRange() {
  for (size_t i = 0; i < splitting_.size();) {
    const uint64_t id = splitting_[i];
    auto it = splits_.find(id);  // gone when it ended early
    if (it == splits_.end() || it->second->error || it->second->whole ||
        stopping_ || it->second->next >= it->second->size) {
      splitting_.erase(splitting_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    Split& split = *it->second;
    if (split.in_flight >= std::max(1, options_.streams_per_file)) {
      ++i;
      continue;
    }
    Job range = split.job;
    range.size.reset();  // the split checks the whole file
    range.xxh128.reset();
    range.in_ranges = false;
    range.split = id;
    range.range_first = split.next;
    range.range_length = std::min(range_size_, split.size - split.next);
    range.attempts = 0;
    range.fruitless = 0;
    range.failing = false;
    range.last_error.reset();
    split.next += range.range_length;
    ++split.in_flight;
    ++split.requests;
    return range;
  }
  return std::nullopt;
}

void TransferLoop::RangeEnded(const Job& range, RangeEnd end,
                              const Error* error) {
  if (range.failing) policy_.FileRecovered();
  Split& split = *splits_.at(range.split);
  --split.in_flight;
  switch (end) {
    case RangeEnd::kArrived:
      split.arrived += range.range_length;
      break;
    case RangeEnd::kRefused:
      if (!ranges_refused_) {
        log_->warn(
            "the collection ignores Range requests: large files are "
            "fetched whole, on one stream each");
      }
      ranges_refused_ = true;
      split.whole = true;
      break;
    case RangeEnd::kFailed:
      if (!split.error) split.error = *error;
      break;
  }
  MaybeEndSplit(range.split);
}

// Once no range of a split file is in flight: fetch it whole (ranges
// refused), check and rename it (all arrived), or remove it (failed, or
// the run stopped).
void TransferLoop::MaybeEndSplit(uint64_t id) {
  Split& split = *splits_.at(id);
  if (split.in_flight > 0 || split.busy) return;
  if (split.next < split.size && !split.error && !split.whole && !stopping_) {
    return;  // more ranges to ask for
  }
  if (split.whole && !split.error && !stopping_) {
    // The whole-file download replaces the temporary file.
    Job job = std::move(split.job);
    job.in_ranges = false;
    splits_.erase(id);
    unblocked_.push_front(std::move(job));
    return;
  }
  split.busy = true;
  const std::string local = split.job.local;
  if (split.error || split.arrived < split.size) {
    if (!split.error) split.error = stop_error_;
    background_->Run([id, local] {
      RemoveRangeFile(local);
      Background::Done done;
      done.split = id;
      return done;
    });
    return;
  }
  const uint64_t size = split.size;
  const std::optional<Digest128> expected = split.job.xxh128;
  Background* background = background_.get();
  background->Run([id, local, size, expected, background] {
    Background::Done done;
    done.split = id;
    done.status = CommitSplitFile(local, size, expected, background->Hasher(),
                                  &done.digest);
    return done;
  });
}

// Collects what the workers finished.
void TransferLoop::DrainBackground() {
  std::vector<Background::Done> done;
  {
    std::lock_guard lock(background_->mu);
    if (background_->done.empty()) return;
    done.swap(background_->done);
  }
  for (Background::Done& d : done) {
    Split& split = *splits_.at(d.split);
    split.busy = false;
    if (!d.created) {
      EndSplit(d.split, d.status, d.digest);
      continue;
    }
    if (!d.status.ok()) {
      split.error = d.status.error();
      MaybeEndSplit(d.split);
      continue;
    }
    if (stopping_) {
      MaybeEndSplit(d.split);
    } else {
      splitting_.push_back(d.split);
    }
  }
}

// A split file was renamed, or removed after `status`'s error.
void TransferLoop::EndSplit(uint64_t id, const Status& status,
                            const std::optional<Digest128>& digest) {
  std::unique_ptr<Split> split = std::move(splits_.at(id));
  splits_.erase(id);
  Job& job = split->job;
  FileResult result;
  result.path = &job.path;
  result.attempts = split->requests;
  result.seconds = SecondsSince(job.first_start);
  std::optional<Error> error = split->error;
  if (!error && !status.ok()) error = status.error();
  if (error) {
    bool said = stopping_ && error->retry_class() == RetryClass::kStopRun;
    log_->log(said ? spdlog::level::debug : spdlog::level::err, "{:?}: {}",
              job.path, error->message());
    result.outcome = Outcome::kFailed;
    result.error = &*error;
    Finish(job, result);
    return;
  }
  RecordFinished(job);
  result.bytes = split->size;
  result.http_status = 206;
  result.xxh128 = digest;
  result.verified = job.xxh128.has_value();
  log_->info("{:?}: ok, {} bytes in {} ranges, {:.3f} s", job.path, split->size,
             split->requests, result.seconds);
  Finish(job, result);
}

}  // namespace ferry
