#include "transport/transfer_loop.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <random>

#include "transport/curl_errors.h"

namespace ferry {
namespace {

// A transfer that receives nothing for this long is stalled.
constexpr long kStallSeconds = 60;
constexpr long kConnectTimeoutSeconds = 30;
// Bytes of an error body kept for the message.
constexpr size_t kMaxErrorBody = 1024;
constexpr int kMaxPollMs = 1000;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

struct TransferLoop::Stream {
  TransferLoop* loop = nullptr;
  CURL* easy = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};

  Job job;
  long status = 0;  // HTTP status, known once the body starts
  uint64_t bytes = 0;
  Hasher hasher;
  std::optional<DiskWriter::FileId> file;
  std::optional<Error> local_error;  // why Receive stopped the transfer
  std::string error_body;
  std::string retry_after;
};

struct TransferLoop::Attempt {
  Job job;
  uint64_t bytes = 0;
  long http_status = 0;
  std::optional<Digest128> digest;
  std::optional<Error> error;
};

TransferLoop::TransferLoop(const GetOptions& options, Planner* planner,
                           DiskWriter* disk, Report* report,
                           spdlog::logger* log)
    : options_(options),
      planner_(planner),
      disk_(disk),
      report_(report),
      log_(log),
      policy_(options.retry, std::random_device{}()) {}

TransferLoop::~TransferLoop() {
  for (auto& s : streams_) {
    if (s->easy == nullptr) continue;
    if (multi_ != nullptr) curl_multi_remove_handle(multi_, s->easy);
    curl_easy_cleanup(s->easy);
  }
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  curl_slist_free_all(headers_);
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

  // Without this header a collection answers a refused request with a
  // redirect to its login page instead of 401/403.
  headers_ = curl_slist_append(headers_, "X-Requested-With: XMLHttpRequest");
  if (!options_.token.empty()) {
    headers_ = curl_slist_append(
        headers_, ("Authorization: Bearer " + options_.token).c_str());
  }

  for (long i = 0; i < streams; ++i) {
    auto s = std::make_unique<Stream>();
    s->loop = this;
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

// Options that stay the same for every transfer of the run: set once per
// handle, which is then reused for transfer after transfer.
void TransferLoop::ConfigureHandle(Stream& s) {
  CURL* e = s.easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &s);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s.error_buffer);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &TransferLoop::OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &TransferLoop::OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/0.1");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(
      e, CURLOPT_HTTP_VERSION,
      options_.http1 ? CURL_HTTP_VERSION_1_1 : CURL_HTTP_VERSION_2TLS);
  // Wait for a connection that multiplexes rather than race to open more.
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
  // A stall is detected by speed, never by a whole-transfer timeout that
  // a large file would run into.
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  }
}

void TransferLoop::Wake() { curl_multi_wakeup(multi_); }

void TransferLoop::Run() {
  for (;;) {
    Clock::time_point now = Clock::now();
    if (options_.interrupt != nullptr && options_.interrupt->load() &&
        !stopping_) {
      Interrupt();
    }

    // Start what can start: due retries first, then new jobs.
    Admit(now);
    disk_->Submit();

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

    // Files the disk has finished with.
    disk_->Poll([this](uint64_t cookie, const Status& status) {
      OnDiskDone(cookie, status);
    });
    disk_->Submit();
    report_->Tick(Clock::now());
    if (Finished()) break;

    // Wait for sockets, the ring, a due retry or a new job.
    curl_waitfd ring_fd{disk_->event_fd(), CURL_WAIT_POLLIN, 0};
    curl_multi_poll(multi_, &ring_fd, 1, PollTimeoutMs(Clock::now()), nullptr);
  }
}

bool TransferLoop::Finished() const {
  bool no_more_jobs =
      (plan_done_ && delayed_.empty() && unblocked_.empty()) || stopping_;
  return no_more_jobs && idle_streams_.size() == streams_.size() &&
         disk_pending_ == 0 && disk_->idle();
}

int TransferLoop::PollTimeoutMs(Clock::time_point now) {
  long curl_ms = -1;
  curl_multi_timeout(multi_, &curl_ms);
  long ms = curl_ms < 0 ? kMaxPollMs : std::min<long>(curl_ms, kMaxPollMs);
  if (!delayed_.empty() && !idle_streams_.empty()) {
    auto due = std::chrono::duration_cast<std::chrono::milliseconds>(
        delayed_.begin()->first - now);
    ms = std::clamp<long>(static_cast<long>(due.count()), 0, ms);
  }
  return static_cast<int>(ms);
}

std::optional<Job> TransferLoop::NextJob(Clock::time_point now) {
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
  while (!plan_done_) {
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
    if (ClaimDest(*job)) return job;
  }
  return std::nullopt;
}

// Two entries for one destination must not write it at the same time:
// the later one waits until the earlier one has ended.
bool TransferLoop::ClaimDest(Job& job) {
  auto [it, claimed] = dests_.try_emplace(job.dest);
  if (claimed) return true;
  log_->warn("{:?}: listed again on line {}; fetched after the earlier entry",
             job.path, job.line);
  it->second.push_back(std::move(job));
  return false;
}

void TransferLoop::ReleaseDest(const std::string& dest) {
  auto it = dests_.find(dest);
  if (it == dests_.end()) return;
  if (it->second.empty()) {
    dests_.erase(it);
    return;
  }
  unblocked_.push_back(std::move(it->second.front()));
  it->second.erase(it->second.begin());
}

void TransferLoop::Admit(Clock::time_point now) {
  // A full buffer pool means the disk is behind: let it catch up before
  // starting more files.
  while (!stopping_ && !idle_streams_.empty() && !disk_->over_budget()) {
    std::optional<Job> job = NextJob(now);
    if (!job) return;
    Stream* s = idle_streams_.back();
    idle_streams_.pop_back();
    Start(*s, std::move(*job));
  }
}

void TransferLoop::Start(Stream& s, Job job) {
  s.job = std::move(job);
  if (s.job.attempts++ == 0) s.job.first_start = Clock::now();
  s.status = 0;
  s.bytes = 0;
  s.hasher.Reset();
  s.file.reset();
  s.local_error.reset();
  s.error_body.clear();
  s.retry_after.clear();
  s.error_buffer[0] = '\0';
  curl_easy_setopt(s.easy, CURLOPT_URL, s.job.url.c_str());
  curl_multi_add_handle(multi_, s.easy);
}

size_t TransferLoop::OnWrite(char* data, size_t size, size_t count,
                             void* user) {
  auto* s = static_cast<Stream*>(user);
  return s->loop->Receive(*s, data, size * count);
}

size_t TransferLoop::OnHeader(char* data, size_t size, size_t count,
                              void* user) {
  auto* s = static_cast<Stream*>(user);
  size_t n = size * count;
  static constexpr char kRetryAfter[] = "retry-after:";
  constexpr size_t kLen = sizeof kRetryAfter - 1;
  if (n > kLen && strncasecmp(data, kRetryAfter, kLen) == 0) {
    std::string value(data + kLen, n - kLen);
    auto first = value.find_first_not_of(" \t");
    auto last = value.find_last_not_of(" \t\r\n");
    s->retry_after =
        first == std::string::npos ? "" : value.substr(first, last - first + 1);
  }
  return n;
}

size_t TransferLoop::Receive(Stream& s, const char* data, size_t size) {
  if (s.status == 0) {
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &s.status);
  }
  if (s.status != 200) {
    // An error page: keep its start for the message, never write it.
    size_t keep = std::min(
        size, kMaxErrorBody - std::min(kMaxErrorBody, s.error_body.size()));
    s.error_body.append(data, keep);
    return size;
  }
  if (s.job.size && s.bytes + size > *s.job.size) {
    s.local_error = Error(ErrorCode::kSizeMismatch, RetryClass::kPermanent,
                          fmt::format("the collection sends more than the "
                                      "{} bytes the manifest gives",
                                      *s.job.size));
    return 0;
  }
  if (!s.file) {
    DiskWriter::FileId id;
    if (Status st = disk_->Begin(s.job.dest, s.job.attempts, 0, &id);
        !st.ok()) {
      s.local_error = st.error();
      return 0;
    }
    s.file = id;
  }
  if (disk_->failed(*s.file)) return 0;  // the disk's error comes later
  s.hasher.Update(data, size);
  disk_->Append(*s.file, data, size);
  s.bytes += size;
  report_->AddReceived(size);
  return size;
}

std::optional<Error> TransferLoop::CheckResponse(Stream& s, CURLcode code) {
  if (s.local_error) return s.local_error;
  if (code == CURLE_WRITE_ERROR && s.file && disk_->failed(*s.file)) {
    return std::nullopt;  // the disk writer reports its own error
  }
  if (code != CURLE_OK) return ErrorFromCurl(code, s.error_buffer);
  if (s.status != 200) {
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &s.status);
  }
  if (s.status != 200) {
    char* location = nullptr;
    curl_easy_getinfo(s.easy, CURLINFO_REDIRECT_URL, &location);
    return ErrorFromHttpStatus(s.status, location ? location : "", s.error_body,
                               s.retry_after);
  }
  curl_off_t announced = -1;
  curl_easy_getinfo(s.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
  if (announced >= 0 && static_cast<uint64_t>(announced) != s.bytes) {
    return Error(ErrorCode::kTruncated, RetryClass::kTransient,
                 fmt::format("received {} bytes of the {} announced", s.bytes,
                             announced));
  }
  if (s.job.size && *s.job.size != s.bytes) {
    return Error(ErrorCode::kSizeMismatch, RetryClass::kPermanent,
                 fmt::format("received {} bytes, the manifest gives {}",
                             s.bytes, *s.job.size));
  }
  return std::nullopt;
}

void TransferLoop::OnTransferDone(Stream& s, CURLcode code) {
  curl_multi_remove_handle(multi_, s.easy);
  Attempt a;
  a.error = CheckResponse(s, code);
  a.http_status = s.status;
  a.bytes = s.bytes;
  if (!a.error && !(s.file && disk_->failed(*s.file))) {
    a.digest = s.hasher.Final();
    if (s.job.xxh128 && *s.job.xxh128 != *a.digest) {
      a.error = Error(ErrorCode::kChecksum, RetryClass::kPermanent,
                      fmt::format("xxh128 {} differs from the manifest's {}",
                                  a.digest->ToHex(), s.job.xxh128->ToHex()));
    }
  }
  // An empty file has no bytes that would have created it.
  if (!a.error && !s.file && code == CURLE_OK) {
    DiskWriter::FileId id;
    if (Status st = disk_->Begin(s.job.dest, s.job.attempts, 0, &id); st.ok()) {
      s.file = id;
    } else {
      a.error = st.error();
    }
  }
  a.job = std::move(s.job);
  std::optional<DiskWriter::FileId> file = s.file;
  bool commit = !a.error && !(file && disk_->failed(*file));
  idle_streams_.push_back(&s);

  if (!file) {
    EndAttempt(std::move(a));
    return;
  }
  // The attempt ends when the disk has renamed or removed its file.
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
  disk_->Finish(*file, commit);
}

void TransferLoop::OnDiskDone(uint64_t cookie, const Status& status) {
  Attempt a = std::move(*at_disk_[cookie]);
  at_disk_[cookie].reset();
  free_cookies_.push_back(cookie);
  --disk_pending_;
  // A local error explains a stopped transfer better than curl's word.
  if (!status.ok()) a.error = status.error();
  EndAttempt(std::move(a));
}

void TransferLoop::EndAttempt(Attempt a) {
  Job& job = a.job;
  FileResult result;
  result.path = &job.path;
  result.bytes = a.bytes;
  result.http_status = a.http_status;
  result.attempts = job.attempts;
  result.seconds = SecondsSince(job.first_start);
  if (!a.error) {
    result.xxh128 = a.digest;
    result.verified = job.xxh128.has_value();
    log_->info("{:?}: ok, {} bytes, {} attempt(s), {:.3f} s", job.path, a.bytes,
               job.attempts, result.seconds);
    report_->FileDone(result);
    ReleaseDest(job.dest);
    return;
  }

  const Error& error = *a.error;
  // Once the run stops, the files still in flight fail for the same
  // reason; it was said once already.
  bool said = stopping_ && error.retry_class() == RetryClass::kStopRun;
  if (error.retry_class() == RetryClass::kStopRun) StopRun(error);
  RetryDecision next = policy_.OnFailure(error, job.attempts, Clock::now());
  if (next.retry && !stopping_) {
    double wait =
        std::chrono::duration<double>(next.not_before - Clock::now()).count();
    log_->warn("{:?}: attempt {}/{} failed: {}; retrying in {:.1f} s", job.path,
               job.attempts, policy_.options().max_attempts, error.message(),
               std::max(wait, 0.0));
    report_->AddRetry();
    delayed_.emplace(next.not_before, std::move(job));
    return;
  }
  log_->log(said ? spdlog::level::debug : spdlog::level::err, "{:?}: {}",
            job.path, error.message());
  result.error = &error;
  report_->FileDone(result);
  ReleaseDest(job.dest);
}

// Abandons every transfer in flight; their files are removed by the disk
// writer, and the attempts end as failed through the usual path.
void TransferLoop::Interrupt() {
  Error interrupted(ErrorCode::kInterrupted, RetryClass::kStopRun,
                    "interrupted");
  StopRun(interrupted);
  for (auto& s : streams_) {
    if (std::find(idle_streams_.begin(), idle_streams_.end(), s.get()) !=
        idle_streams_.end()) {
      continue;
    }
    s->local_error = interrupted;
    OnTransferDone(*s, CURLE_ABORTED_BY_CALLBACK);
  }
}

void TransferLoop::StopRun(const Error& error) {
  if (stopping_) return;
  stopping_ = true;
  log_->error("stopping the run: {}", error.message());
  report_->StopRun(error);
  planner_->Stop();
  // Retries that were waiting will not run; count them as failed.
  for (auto& [when, job] : delayed_) {
    FileResult result;
    result.path = &job.path;
    result.attempts = job.attempts;
    result.seconds = SecondsSince(job.first_start);
    result.error = &error;
    report_->FileDone(result);
  }
  delayed_.clear();
}

}  // namespace ferry
