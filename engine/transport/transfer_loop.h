// The transfer loop: one thread that owns the libcurl multi handle, every
// easy handle and the rings of the disk writer and reader. It pulls jobs
// from the planner when it has a free stream, starts HTTP/2 requests
// multiplexed over a few connections, hands received bytes to the disk
// writer and feeds uploads from the disk reader, takes the sync decisions
// that need the collection's answer, and hands every failed attempt to
// the retry policy. The rings' eventfds sit in the same poll as curl's
// sockets, so one wait covers network and disk.
//
// A large download goes in ranges on several streams at once: each range
// is a job of its own, written at its offset into the one temporary file.
// Creating that file beforehand, and hashing and renaming it after its
// last range, may take long; oneTBB workers do it and wake the loop.
#pragma once

#include <curl/curl.h>
#include <spdlog/logger.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "disk/disk_reader.h"
#include "disk/disk_writer.h"
#include "disk/journal.h"
#include "ferry/digest.h"
#include "ferry/retry_policy.h"
#include "ferry/run.h"
#include "plan/job.h"
#include "plan/planner.h"
#include "policy/concurrency.h"
#include "policy/rate_limiter.h"
#include "policy/request_limiter.h"
#include "report/report.h"

namespace ferry {

class TransferLoop {
 public:
  // `disk` is needed by downloads, `reader` by uploads; either may be
  // null when the run does not need it. `journal`, when not null, learns
  // which downloads are finished and which are kept partial.
  TransferLoop(const RunOptions& options, Planner* planner, DiskWriter* disk,
               DiskReader* reader, Journal* journal, Report* report,
               spdlog::logger* log);
  ~TransferLoop();
  TransferLoop(const TransferLoop&) = delete;
  TransferLoop& operator=(const TransferLoop&) = delete;

  [[nodiscard]] Status Init();

  // Runs until every job has ended or the run was stopped.
  void Run();

  // Thread-safe: interrupts a wait so that the loop looks for new jobs.
  void Wake();

 private:
  struct Stream;
  struct Attempt;  // an ended transfer whose file the disk still finishes
  struct Split;    // a download fetched in ranges
  struct Background;
  enum class RangeEnd { kArrived, kRefused, kFailed };

  void ConfigureHandle(Stream& s);
  void SetAuthorization(const std::string& token);
  bool RefreshToken();
  void AdoptRenewedToken();
  void Admit(Clock::time_point now);
  std::optional<Job> NextJob(Clock::time_point now);
  bool ClaimKey(Job& job);
  void ReleaseKey(const std::string& key);
  void Start(Stream& s, Job job);
  void SetRequest(Stream& s);
  void OnReaderReady(uint64_t cookie);
  void OnTransferDone(Stream& s, CURLcode code);
  std::optional<Error> CheckResponse(Stream& s, CURLcode code);
  void OnDiskDone(uint64_t cookie, const Status& status);
  void EndAttempt(Attempt attempt);
  void Decide(Attempt& attempt);
  RetryDecision AskPolicy(const Error& error, Job& job, const Attempt& a,
                          bool progressed);
  uint64_t WholeSize(Stream& s) const;
  void Retry(Job job, const RetryDecision& next, const Error& error,
             const Attempt& attempt);
  void Finish(const Job& job, const FileResult& result);
  void StopRun(const Error& error);
  void Abandon(const Error& error);
  void Checkpoint(Clock::time_point now);
  void RecordFinished(const Job& job);
  bool Finished() const;
  void StartSplit(Job job);
  std::optional<Job> NextRange();
  void RangeEnded(const Job& range, RangeEnd end, const Error* error);
  void MaybeEndSplit(uint64_t id);
  void DrainBackground();
  void EndSplit(uint64_t id, const Status& status,
                const std::optional<Digest128>& digest);
  bool PauseForRate(Stream& s, size_t bytes);
  // A stream is free and the concurrency limit allows one more transfer.
  bool HasRoom() const;
  bool FewInFlight() const;
  void ResumeRatePaused(Clock::time_point now);
  int PollTimeoutMs(Clock::time_point now);

  static size_t OnWrite(char* data, size_t size, size_t count, void* user);
  static size_t OnHeader(char* data, size_t size, size_t count, void* user);
  static size_t OnRead(char* data, size_t size, size_t count, void* user);
  size_t Receive(Stream& s, const char* data, size_t size);
  bool BeginFile(Stream& s);
  bool BeginRange(Stream& s);
  size_t Send(Stream& s, char* data, size_t size);

  const RunOptions& options_;
  Planner* planner_;
  DiskWriter* disk_;
  DiskReader* reader_;
  Journal* journal_;
  Report* report_;
  spdlog::logger* log_;
  RetryPolicy policy_;
  RequestLimiter limiter_;
  RateLimiter rate_;
  Concurrency concurrency_;
  uint64_t requests_ended_ = 0;
  // Streams paused because the run had moved its --max-rate; they go on
  // when the bucket has tokens again.
  std::vector<Stream*> rate_paused_;
  size_t resume_first_ = 0;  // rotates, so that no stream always goes first

  CURLM* multi_ = nullptr;
  curl_slist* headers_ = nullptr;
  curl_slist* put_headers_ = nullptr;
  // Header lists replaced by a token refresh, kept while transfers that
  // started with them may still read them.
  std::vector<curl_slist*> retired_headers_;
  std::string token_;
  int token_generation_ = 0;
  uint64_t source_generation_ = 0;  // of options_.token_source's token
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<Stream*> idle_streams_;

  // Attempts waiting for the disk, indexed by the cookie given to it.
  std::vector<std::optional<Attempt>> at_disk_;
  std::vector<uint64_t> free_cookies_;
  size_t disk_pending_ = 0;

  std::multimap<Clock::time_point, Job> delayed_;  // retries not yet due

  std::unordered_map<uint64_t, std::unique_ptr<Split>> splits_;
  uint64_t next_split_ = 0;
  std::vector<uint64_t> splitting_;  // splits with ranges yet to ask for
  bool ranges_refused_ = false;      // the collection ignores Range
  uint64_t range_size_ = 0;          // --range-size in whole 64 KiB
  bool direct_io_ = false;           // ranges are written with O_DIRECT
  std::unique_ptr<Background> background_;
  std::optional<Error> stop_error_;  // why the run stopped, once it did

  // Keys of the jobs started or waiting for a retry, each with the later
  // entries for the same key that wait for it to end.
  std::unordered_map<std::string, std::vector<Job>> busy_keys_;
  std::deque<Job> unblocked_;  // waited, and may start now
  bool plan_done_ = false;
  bool stopping_ = false;
  bool said_no_mtime_ = false;  // warned that the collection sends no time
  bool said_journal_error_ = false;
  Clock::time_point run_start_ = Clock::now();
  Clock::time_point next_checkpoint_ = run_start_;
  Clock::time_point next_journal_sync_ = run_start_;
};

}  // namespace ferry
