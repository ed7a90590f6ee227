#include "ferry/retry_policy.h"

#include <gtest/gtest.h>

#include <set>

#include "transport/curl_errors.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

Error Transient() {
  return Error(ErrorCode::kNetwork, RetryClass::kTransient, "reset");
}

TEST(RetryPolicy, RetriesTransientErrorsUpToTheLimit) {
  RetryPolicy policy({3, milliseconds(100), milliseconds(1000)}, 1);
  Clock::time_point now{};
  EXPECT_TRUE(policy.OnFailure(Transient(), 1, now).retry);
  EXPECT_TRUE(policy.OnFailure(Transient(), 2, now).retry);
  EXPECT_FALSE(policy.OnFailure(Transient(), 3, now).retry);
}

TEST(RetryPolicy, NeverRetriesPermanentOrRunStoppingErrors) {
  RetryPolicy policy({5, milliseconds(100), milliseconds(1000)}, 1);
  Clock::time_point now{};
  Error permanent(ErrorCode::kHttp, RetryClass::kPermanent, "404");
  Error stop(ErrorCode::kAuth, RetryClass::kStopRun, "401");
  EXPECT_FALSE(policy.OnFailure(permanent, 1, now).retry);
  EXPECT_FALSE(policy.OnFailure(stop, 1, now).retry);
}

TEST(RetryPolicy, BackoffGrowsAndStaysUnderTheCap) {
  RetryPolicy policy({100, milliseconds(100), milliseconds(1000)}, 42);
  Clock::time_point now{};
  for (int attempt = 1; attempt < 60; ++attempt) {
    auto wait = policy.OnFailure(Transient(), attempt, now).not_before - now;
    milliseconds ceiling =
        std::min(milliseconds(1000),
                 milliseconds(100) * (1 << std::min(attempt - 1, 20)));
    EXPECT_GE(wait, milliseconds(0));
    EXPECT_LE(wait, ceiling) << "attempt " << attempt;
  }
}

TEST(RetryPolicy, JitterSpreadsFilesThatFailTogether) {
  RetryPolicy policy({10, milliseconds(1000), milliseconds(60000)}, 7);
  Clock::time_point now{};
  std::set<Clock::time_point> distinct;
  for (int i = 0; i < 20; ++i) {
    distinct.insert(policy.OnFailure(Transient(), 4, now).not_before);
  }
  EXPECT_GT(distinct.size(), 10u);
}

TEST(RetryPolicy, HonoursRetryAfter) {
  RetryPolicy policy({5, milliseconds(10), milliseconds(20)}, 1);
  Clock::time_point now{};
  Error busy = ErrorFromHttpStatus(503, "", "", "7");
  RetryDecision d = policy.OnFailure(busy, 1, now);
  ASSERT_TRUE(d.retry);
  EXPECT_GE(d.not_before - now, std::chrono::seconds(7));
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
