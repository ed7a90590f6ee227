// Errors as values. Every failure that crosses a layer of the engine is an
// Error: a code saying what kind of thing went wrong, a retry class that the
// retry policy reads, and a message for people. Foreign error spaces (errno,
// CURLcode, HTTP status) are turned into an Error in exactly one function
// each; nothing decides anything by matching message text.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace ferry {

enum class ErrorCode {
  kUsage,         // bad options or arguments
  kManifest,      // the manifest cannot be read or has bad lines
  kNetwork,       // connection refused, reset, closed early
  kTls,           // certificate or handshake failure
  kTimeout,       // connect timeout or a stalled transfer
  kHttp,          // the collection answered with an error status
  kAuth,          // the token was refused (401) or a login redirect
  kRedirect,      // a 3xx answer; ferry never follows redirects
  kTruncated,     // fewer (or more) bytes than the server announced
  kSizeMismatch,  // the file's size differs from the manifest's
  kChecksum,      // the file's XXH3-128 differs from the manifest's
  kLocalIo,       // a local file system operation failed
  kInternal,      // a bug or an impossible library answer
  kInterrupted,   // the user asked the run to stop
};

// How the retry policy treats an error.
enum class RetryClass {
  kPermanent,  // retrying this file cannot help
  kTransient,  // another attempt may succeed
  kStopRun,    // no other file can succeed either: stop starting new ones
};

class Error {
 public:
  Error(ErrorCode code, RetryClass retry, std::string message)
      : code_(code), retry_(retry), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  RetryClass retry_class() const { return retry_; }
  const std::string& message() const { return message_; }

  // The HTTP status that caused this error, or 0.
  long http_status() const { return http_status_; }
  Error& set_http_status(long status) {
    http_status_ = status;
    return *this;
  }

  // A server's request to wait (Retry-After), if it made one.
  std::optional<std::chrono::milliseconds> retry_after() const {
    return retry_after_;
  }
  Error& set_retry_after(std::chrono::milliseconds wait) {
    retry_after_ = wait;
    return *this;
  }

 private:
  ErrorCode code_;
  RetryClass retry_;
  std::string message_;
  long http_status_ = 0;
  std::optional<std::chrono::milliseconds> retry_after_;
};

// The outcome of an operation that returns nothing else: ok, or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

// Turns an errno value into an Error. Out of space and a read-only file
// system stop the run; other local failures fail only the file at hand.
Error ErrorFromErrno(int err, const std::string& what);

}  // namespace ferry
