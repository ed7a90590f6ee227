#include "ferry/retry_policy.h"

#include <gtest/gtest.h>

#include <ctime>
#include <set>

#include "transport/curl_errors.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

Error Transient() {
  return Error(ErrorCode::kNetwork, RetryClass::kTransient, "reset");
}

RetryOptions Options(int attempts, milliseconds base, milliseconds cap) {
  RetryOptions o;
  o.max_attempts = attempts;
  o.base_delay = base;
  o.max_delay = cap;
  return o;
}

FailedAttempt Nth(int attempt, uint64_t kept = 0) {
  FailedAttempt a;
  a.attempt = attempt;
  a.fruitless = attempt;
  a.kept_bytes = kept;
  return a;
}

bool Retries(const RetryDecision& d) {
  return d.action == RetryDecision::kRetry;
}

TEST(RetryPolicy, RetriesTransientErrorsUpToTheLimit) {
  RetryPolicy policy(Options(3, milliseconds(100), milliseconds(1000)), 1);
  Clock::time_point now{};
  EXPECT_TRUE(Retries(policy.OnFailure(Transient(), Nth(1), now)));
  EXPECT_TRUE(Retries(policy.OnFailure(Transient(), Nth(2), now)));
  EXPECT_FALSE(Retries(policy.OnFailure(Transient(), Nth(3), now)));
}

TEST(RetryPolicy, NeverRetriesPermanentOrRunStoppingErrors) {
  RetryPolicy policy(Options(5, milliseconds(100), milliseconds(1000)), 1);
  Clock::time_point now{};
  Error permanent(ErrorCode::kHttp, RetryClass::kPermanent, "404");
  Error full(ErrorCode::kLocalIo, RetryClass::kStopRun, "no space");
  EXPECT_EQ(policy.OnFailure(permanent, Nth(1), now).action,
            RetryDecision::kGiveUp);
  EXPECT_EQ(policy.OnFailure(full, Nth(1), now).action,
            RetryDecision::kStopRun);
}

TEST(RetryPolicy, BackoffGrowsAndStaysUnderTheCap) {
  RetryPolicy policy(Options(100, milliseconds(100), milliseconds(1000)), 42);
  Clock::time_point now{};
  for (int attempt = 1; attempt < 60; ++attempt) {
    auto wait =
        policy.OnFailure(Transient(), Nth(attempt), now).not_before - now;
    milliseconds ceiling =
        std::min(milliseconds(1000),
                 milliseconds(100) * (1 << std::min(attempt - 1, 20)));
    EXPECT_GE(wait, milliseconds(0));
    EXPECT_LE(wait, ceiling) << "attempt " << attempt;
  }
}

TEST(RetryPolicy, JitterSpreadsFilesThatFailTogether) {
  RetryPolicy policy(Options(10, milliseconds(1000), milliseconds(60000)), 7);
  Clock::time_point now{};
  std::set<Clock::time_point> distinct;
  for (int i = 0; i < 20; ++i) {
    distinct.insert(policy.OnFailure(Transient(), Nth(4), now).not_before);
  }
  EXPECT_GT(distinct.size(), 10u);
}

TEST(RetryPolicy, HonoursRetryAfter) {
  RetryPolicy policy(Options(5, milliseconds(10), milliseconds(20)), 1);
  Clock::time_point now{};
  Error busy = ErrorFromHttpStatus(503, "", "", "7");
  RetryDecision d = policy.OnFailure(busy, Nth(1), now);
  ASSERT_TRUE(Retries(d));
  EXPECT_GE(d.not_before - now, std::chrono::seconds(7));
}

TEST(HttpStatus, RetryAfterMayBeAnHttpDate) {
  char date[64];
  std::time_t in_a_minute = std::time(nullptr) + 60;
  std::tm tm{};
  gmtime_r(&in_a_minute, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  Error busy = ErrorFromHttpStatus(503, "", "", date);
  ASSERT_TRUE(busy.retry_after().has_value()) << date;
  EXPECT_GE(*busy.retry_after(), std::chrono::seconds(58));
  EXPECT_LE(*busy.retry_after(), std::chrono::seconds(60));
  // A date in the past asks for no wait.
  Error past =
      ErrorFromHttpStatus(429, "", "", "Thu, 01 Jan 1970 00:00:00 GMT");
  ASSERT_TRUE(past.retry_after().has_value());
  EXPECT_EQ(*past.retry_after(), std::chrono::seconds(0));
}

TEST(RetryPolicy, RetryAfterHoldsBackTheWholeRun) {
  RetryPolicy policy(Options(5, milliseconds(10), milliseconds(20)), 1);
  Clock::time_point now{};
  EXPECT_TRUE(policy.MayStartFile(now));
  (void)policy.OnFailure(ErrorFromHttpStatus(429, "", "", "3"), Nth(1), now);
  EXPECT_FALSE(policy.MayStartFile(now + std::chrono::seconds(2)));
  EXPECT_FALSE(policy.MayRetry(now + std::chrono::seconds(2)));
  EXPECT_TRUE(policy.MayStartFile(now + std::chrono::seconds(3)));
  EXPECT_EQ(policy.held(), std::chrono::seconds(3));
  // A plain 503 slows only its own file.
  (void)policy.OnFailure(ErrorFromHttpStatus(503, "", "", ""), Nth(1),
                         now + std::chrono::seconds(4));
  EXPECT_TRUE(policy.MayStartFile(now + std::chrono::seconds(4)));
}

TEST(RetryPolicy, TooManyFailingFilesStopNewStarts) {
  RetryOptions o = Options(5, milliseconds(10), milliseconds(20));
  o.max_failing = 2;
  RetryPolicy policy(o, 1);
  Clock::time_point now{};
  policy.FileFailing();
  EXPECT_TRUE(policy.MayStartFile(now));
  policy.FileFailing();
  EXPECT_FALSE(policy.MayStartFile(now));
  EXPECT_TRUE(policy.MayRetry(now));
  policy.FileRecovered();
  EXPECT_TRUE(policy.MayStartFile(now));
}

TEST(RetryPolicy, DownloadsContinueFromTheirKeptBytes) {
  RetryPolicy policy(Options(5, milliseconds(10), milliseconds(20)), 1);
  Clock::time_point now{};
  RetryDecision d = policy.OnFailure(
      Error(ErrorCode::kTruncated, RetryClass::kTransient, "short"),
      Nth(1, 4096), now);
  ASSERT_TRUE(Retries(d));
  EXPECT_EQ(d.resume_from, 4096u);
  // A resumed file whose digest is wrong starts over, once more.
  FailedAttempt resumed = Nth(2, 8192);
  resumed.resumed = true;
  d = policy.OnFailure(
      Error(ErrorCode::kChecksum, RetryClass::kPermanent, "digest"), resumed,
      now);
  ASSERT_TRUE(Retries(d));
  EXPECT_EQ(d.resume_from, 0u);
  // A file that was not resumed and has a wrong digest is not retried.
  EXPECT_FALSE(Retries(policy.OnFailure(
      Error(ErrorCode::kChecksum, RetryClass::kPermanent, "digest"), Nth(1),
      now)));
}

TEST(RetryPolicy, AttemptsThatMoveADownloadForwardDoNotCount) {
  RetryPolicy policy(Options(3, milliseconds(10), milliseconds(20)), 1);
  Clock::time_point now{};
  Error cut(ErrorCode::kNetwork, RetryClass::kTransient, "reset");
  FailedAttempt progressing = Nth(7, 1000);
  progressing.fruitless = 2;
  EXPECT_TRUE(Retries(policy.OnFailure(cut, progressing, now)));
  // Ten times the limit in all, however much each moved.
  progressing.attempt = 30;
  RetryDecision d = policy.OnFailure(cut, progressing, now);
  EXPECT_EQ(d.action, RetryDecision::kGiveUp);
  // Given up, the bytes stay for the same command run again.
  EXPECT_EQ(d.resume_from, 1000u);
}

TEST(RetryPolicy, ARefusedTokenIsRefreshedOncePerToken) {
  RetryPolicy policy(Options(5, milliseconds(10), milliseconds(20)), 1);
  Clock::time_point now{};
  Error refused = ErrorFromHttpStatus(401, "", "", "");
  EXPECT_EQ(policy.OnFailure(refused, Nth(1), now).action,
            RetryDecision::kRefreshToken);
  policy.OnTokenRefreshed(1);
  // Sent with the old token: try again with the new one.
  EXPECT_EQ(policy.OnFailure(refused, Nth(1), now).action,
            RetryDecision::kRetry);
  FailedAttempt with_new = Nth(2);
  with_new.token_generation = 1;
  EXPECT_EQ(policy.OnFailure(refused, with_new, now).action,
            RetryDecision::kRefreshToken);
}

TEST(HttpStatus, ClassifiesLikeTheCollectionMeansIt) {
  EXPECT_EQ(ErrorFromHttpStatus(401, "", "", "").retry_class(),
            RetryClass::kStopRun);
  EXPECT_EQ(ErrorFromHttpStatus(403, "", "", "").retry_class(),
            RetryClass::kPermanent);
  EXPECT_EQ(ErrorFromHttpStatus(404, "", "", "").retry_class(),
            RetryClass::kPermanent);
  EXPECT_EQ(ErrorFromHttpStatus(429, "", "", "").retry_class(),
            RetryClass::kTransient);
  EXPECT_EQ(ErrorFromHttpStatus(500, "", "", "").retry_class(),
            RetryClass::kTransient);
  EXPECT_EQ(ErrorFromHttpStatus(503, "", "", "").retry_class(),
            RetryClass::kTransient);
  Error redirect = ErrorFromHttpStatus(302, "https://login/x", "", "");
  EXPECT_EQ(redirect.code(), ErrorCode::kRedirect);
  EXPECT_EQ(redirect.retry_class(), RetryClass::kPermanent);
  EXPECT_NE(redirect.message().find("not followed"), std::string::npos);
}

TEST(CurlCode, ConnectionFailuresAreTransientAndTlsStopsTheRun) {
  EXPECT_EQ(ErrorFromCurl(CURLE_COULDNT_CONNECT, "").retry_class(),
            RetryClass::kTransient);
  EXPECT_EQ(ErrorFromCurl(CURLE_RECV_ERROR, "").retry_class(),
            RetryClass::kTransient);
  EXPECT_EQ(ErrorFromCurl(CURLE_PEER_FAILED_VERIFICATION, "").retry_class(),
            RetryClass::kStopRun);
}

}  // namespace
}  // namespace ferry
