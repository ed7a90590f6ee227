#include "report/report.h"

#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace ferry {
namespace {

std::string HumanBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{:.0f} {}", bytes, kUnits[unit]);
  return fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Status Report::Open(Operation op, const std::string& path,
                    ProgressMode progress, uint64_t files, std::FILE* listing) {
  summary_.op = op;
  summary_.files = files;
  if (op == Operation::kStat) listing_ = listing != nullptr ? listing : stdout;
  report_path_ = path;
  if (!path.empty()) {
    out_.open(path, std::ios::out | std::ios::trunc);
    if (!out_) return ErrorFromErrno(errno, "cannot write report " + path);
  }
  tty_ = ::isatty(STDERR_FILENO) == 1;
  progress_ = progress == ProgressMode::kAlways ||
              (progress == ProgressMode::kAuto && tty_);
  // A terminal gets a line that redraws itself; a log gets a line now and
  // then.
  progress_every_ =
      tty_ ? std::chrono::milliseconds(500) : std::chrono::milliseconds(10000);
  next_progress_ = start_ + progress_every_;
  return {};
}

void Report::FileDone(const FileResult& r) {
  static constexpr const char* kStatus[] = {"ok", "skipped", "absent",
                                            "failed"};
  switch (r.outcome) {
    case Outcome::kOk:
      ++summary_.ok;
      summary_.bytes += r.bytes;
      if (r.verified) ++summary_.verified;
      break;
    case Outcome::kSkipped:
      ++summary_.skipped;
      break;
    case Outcome::kAbsent:
      ++summary_.absent;
      break;
    case Outcome::kFailed:
      ++summary_.failed;
      break;
  }
  if (listing_ != nullptr) {
    if (r.outcome == Outcome::kOk) {
      std::fprintf(listing_, "%s\t%s\t%s\n", r.path->c_str(),
                   r.remote_size ? std::to_string(*r.remote_size).c_str() : "-",
                   r.content_type.empty() ? "-" : r.content_type.c_str());
    } else {
      std::fprintf(listing_, "%s\t-\t%s\n", r.path->c_str(),
                   kStatus[static_cast<int>(r.outcome)]);
    }
  }
  if (!out_.is_open()) return;
  nlohmann::json line = {
      {"path", *r.path},
      {"op", OperationName(summary_.op)},
      {"status", kStatus[static_cast<int>(r.outcome)]},
      {"bytes", r.bytes},
      {"http_status", r.http_status},
      {"attempts", r.attempts},
      {"seconds", std::round(r.seconds * 1e6) / 1e6},
  };
  if (r.xxh128 && r.outcome == Outcome::kOk) line["xxh128"] = r.xxh128->ToHex();
  if (r.reason != nullptr) line["reason"] = *r.reason;
  if (r.remote_size) line["size"] = *r.remote_size;
  if (!r.content_type.empty()) line["type"] = r.content_type;
  if (r.error != nullptr) line["error"] = r.error->message();
  if (r.last_error != nullptr) line["last_error"] = r.last_error->message();
  // Paths are bytes; a name that is not UTF-8 must not break the report.
  out_ << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
       << '\n';
}

void Report::StopRun(const Error& error) {
  if (!summary_.stopped_by) summary_.stopped_by = error;
}

void Report::Tick(std::chrono::steady_clock::time_point now) {
  if (now < next_progress_) return;
  // Lines of finished files reach the report file at least this often.
  if (out_.is_open()) out_.flush();
  if (!progress_) {
    next_progress_ = now + progress_every_;
    return;
  }
  next_progress_ = now + progress_every_;
  PrintProgress(now);
}

void Report::PrintProgress(std::chrono::steady_clock::time_point now) {
  double elapsed = Seconds(now - start_);
  uint64_t done =
      summary_.ok + summary_.skipped + summary_.absent + summary_.failed;
  std::string line = fmt::format(
      "ferry: {}/{} files, {} over the network, {}/s, {} failed, {:.0f} s",
      done, summary_.files, HumanBytes(static_cast<double>(moved_)),
      HumanBytes(elapsed > 0 ? static_cast<double>(moved_) / elapsed : 0),
      summary_.failed, elapsed);
  std::fprintf(stderr, tty_ ? "\r\033[K%s" : "%s\n", line.c_str());
  std::fflush(stderr);
  progress_shown_ = true;
}

RunSummary Report::Finish() {
  if (progress_shown_ && tty_) std::fputs("\r\033[K", stderr);
  summary_.seconds = Seconds(std::chrono::steady_clock::now() - start_);
  summary_.moved = moved_;
  uint64_t done =
      summary_.ok + summary_.skipped + summary_.absent + summary_.failed;
  summary_.not_attempted = summary_.files > done ? summary_.files - done : 0;
  if (out_.is_open()) {
    out_.flush();
    if (!out_) {
      summary_.report_error = ErrorFromErrno(
          errno != 0 ? errno : EIO, "cannot write report " + report_path_);
    }
  }
  return summary_;
}

bool RunSummary::all_ok() const {
  uint64_t fine = ok + skipped + (op == Operation::kRemove ? absent : 0);
  return fine == files && !report_error;
}

std::string RunSummary::ToText() const {
  static constexpr const char* kDone[] = {"arrived", "uploaded", "deleted",
                                          "found"};
  // The rate is of the bytes that crossed the network this run: a file
  // continued from an earlier run counts whole in `bytes`, not here.
  double rate = seconds > 0 ? static_cast<double>(moved) / seconds : 0;
  std::string text =
      fmt::format("{} files: {} {}", files, ok, kDone[static_cast<int>(op)]);
  if (op == Operation::kGet || op == Operation::kPut) {
    text += fmt::format(" ({} verified against the manifest)", verified);
  }
  if (skipped > 0) text += fmt::format(", {} skipped", skipped);
  if (absent > 0) text += fmt::format(", {} absent", absent);
  text += fmt::format(", {} failed", failed);
  if (not_attempted > 0)
    text += fmt::format(", {} not attempted", not_attempted);
  if (op == Operation::kGet || op == Operation::kPut) {
    text += fmt::format("\n{} in {:.2f} s: {}/s, {:.0f} files/s",
                        HumanBytes(static_cast<double>(bytes)), seconds,
                        HumanBytes(rate),
                        seconds > 0 ? static_cast<double>(ok) / seconds : 0);
    // Both ways: an upload that checks the collection's copies reads them.
    if (moved != bytes) {
      text += fmt::format(" ({} over the network)",
                          HumanBytes(static_cast<double>(moved)));
    }
  } else {
    text += fmt::format(
        "\nin {:.2f} s: {:.0f} files/s", seconds,
        seconds > 0 ? static_cast<double>(ok + absent) / seconds : 0);
  }
  if (retries > 0) text += fmt::format(", {} retries", retries);
  if (resumed > 0)
    text += fmt::format(" ({} continued a partial file)", resumed);
  if (request_limit_seconds > 0) {
    text += fmt::format(", held back {:.1f} s by --max-requests",
                        request_limit_seconds);
  }
  if (streams_cuts > 0) {
    text += fmt::format(
        ", streams cut to {} at the fewest by the collection's overload "
        "({} time{})",
        streams_lowest, streams_cuts, streams_cuts == 1 ? "" : "s");
  }
  if (rate_limit_seconds > 0) {
    text +=
        fmt::format(", held back {:.1f} s by --max-rate", rate_limit_seconds);
  }
  if (held_seconds > 0) {
    text += fmt::format(", held back {:.1f} s by the collection's Retry-After",
                        held_seconds);
  }
  if (stopped_by) text += "\nstopped early: " + stopped_by->message();
  if (report_error) text += "\n" + report_error->message();
  return text;
}

}  // namespace ferry
