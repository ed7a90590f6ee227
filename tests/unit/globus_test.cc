// The pieces of authentication that need no server: redaction of traces,
// collection ids, the private-file rules and the token cache.
#include "ferry/globus.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "transport/trace.h"
#include "unit/scratch_dir.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using std::chrono::system_clock;

void WriteWithMode(const fs::path& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

TEST(Redaction, AuthorizationHeaderKeepsOnlyItsScheme) {
  EXPECT_EQ(RedactCredentials("Authorization: Bearer abc.DEF-123"),
            "Authorization: Bearer [redacted]");
  EXPECT_EQ(RedactCredentials("authorization: basic Zm9vOmJhcg=="),
            "authorization: basic [redacted]");
  EXPECT_EQ(RedactCredentials("Cookie: session=s3cret"), "Cookie: [redacted]");
  EXPECT_EQ(RedactCredentials("Authorization: s3cret"),
            "Authorization: [redacted]");
}

TEST(Redaction, CredentialsInOtherTextAreCutOut) {
  EXPECT_EQ(RedactCredentials("sending Bearer tok3n now"),
            "sending Bearer [redacted] now");
  EXPECT_EQ(RedactCredentials("x 'Basic dXNlcjpwdw==' y"),
            "x 'Basic [redacted]' y");
}

TEST(Redaction, LeavesOrdinaryLinesAlone) {
  for (const char* line :
       {"GET /data/file HTTP/2", "content-length: 1234",
        "x-requested-with: XMLHttpRequest", "Connected to 127.0.0.1",
        "a basicly bearerish word"}) {
    EXPECT_EQ(RedactCredentials(line), line);
  }
}

TEST(CollectionIds, AreUuids) {
  EXPECT_TRUE(IsCollectionId("2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10"));
  EXPECT_TRUE(IsCollectionId("2F9A1C3E-0B6D-4E57-9A41-5C8E2D7B6F10"));
  EXPECT_FALSE(IsCollectionId(""));
  EXPECT_FALSE(IsCollectionId("2f9a1c3e0b6d4e579a415c8e2d7b6f10"));
  EXPECT_FALSE(IsCollectionId("2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f1g"));
  EXPECT_FALSE(IsCollectionId("../../v0.10/endpoint_search?x=1234567"));
  EXPECT_EQ(HttpsScope("2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10"),
            "https://auth.globus.org/scopes/"
            "2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10/https");
  EXPECT_EQ(DataAccessScope("2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10"),
            "https://auth.globus.org/scopes/"
            "2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10/data_access");
}

TEST(Servers, AreTheSameBySchemeHostAndPort) {
  EXPECT_TRUE(SameServer("https://g-1.data.globus.org/a/b",
                         "https://G-1.Data.Globus.org:443"));
  EXPECT_TRUE(SameServer("https://127.0.0.1:8443/x", "https://127.0.0.1:8443"));
  EXPECT_FALSE(SameServer("https://127.0.0.1:8443/x", "https://127.0.0.1/x"));
  EXPECT_FALSE(SameServer("https://127.0.0.2/x", "https://127.0.0.1/x"));
  EXPECT_FALSE(SameServer("https://g-1.data.globus.org.evil.example/",
                          "https://g-1.data.globus.org/"));
  EXPECT_FALSE(SameServer("http://127.0.0.1/x", "https://127.0.0.1/x"));
  EXPECT_FALSE(SameServer("not a url", "not a url"));
}

TEST(PrivateFile, ReadsTheFirstLineOfAnOwnerOnlyFile) {
  fs::path dir = testing::MakeScratchDir("globus");
  WriteWithMode(dir / "secret", "  s3cret-value \nsecond line\n", 0600);
  std::string secret;
  ASSERT_TRUE(
      ReadPrivateFile(dir / "secret", "client secret file", &secret).ok());
  EXPECT_EQ(secret, "s3cret-value");
  fs::remove_all(dir);
}

TEST(PrivateFile, RefusesAFileOthersCanRead) {
  fs::path dir = testing::MakeScratchDir("globus");
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    WriteWithMode(dir / "secret", "s3cret\n", mode);
    std::string secret;
    Status s = ReadPrivateFile(dir / "secret", "client secret file", &secret);
    ASSERT_FALSE(s.ok()) << std::oct << mode;
    EXPECT_EQ(s.error().code(), ErrorCode::kUsage);
    EXPECT_NE(s.error().message().find("chmod 600"), std::string::npos)
        << s.error().message();
    EXPECT_EQ(s.error().message().find("s3cret"), std::string::npos);
    EXPECT_TRUE(secret.empty());
  }
  fs::remove_all(dir);
}

TEST(PrivateFile, RefusesAnEmptyOrMissingFile) {
  fs::path dir = testing::MakeScratchDir("globus");
  WriteWithMode(dir / "empty", "", 0600);
  WriteWithMode(dir / "blank", "\nsecond-line\n", 0600);
  WriteWithMode(dir / "long", std::string(100000, 'x'), 0600);
  std::string secret;
  Status s = ReadPrivateFile(dir / "empty", "secret", &secret);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("is empty"), std::string::npos);
  s = ReadPrivateFile(dir / "blank", "secret", &secret);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("first line is blank"), std::string::npos);
  s = ReadPrivateFile(dir / "long", "secret", &secret);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("64 KiB"), std::string::npos);
  EXPECT_FALSE(ReadPrivateFile(dir / "missing", "secret", &secret).ok());
  fs::remove_all(dir);
}

GrantedToken TokenFor(const std::string& text, seconds lifetime) {
  GrantedToken t;
  t.access_token = text;
  t.resource_server = "2f9a1c3e-0b6d-4e57-9a41-5c8e2d7b6f10";
  t.scope = "scope-a";
  t.expires_at = system_clock::now() + lifetime;
  return t;
}

TEST(TokenCacheFile, KeepsTokensByKeyInAnOwnerOnlyFile) {
  fs::path dir = testing::MakeScratchDir("globus");
  TokenCache cache((dir / "sub" / "tokens.json").string());
  ASSERT_TRUE(
      cache.Store("client-a scope-a", TokenFor("t-a", seconds(3600))).ok());
  ASSERT_TRUE(
      cache.Store("client-b scope-a", TokenFor("t-b", seconds(3600))).ok());
  struct stat st {};
  ASSERT_EQ(::stat(cache.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);

  std::optional<GrantedToken> found;
  ASSERT_TRUE(cache.Find("client-a scope-a", seconds(60), &found).ok());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->access_token, "t-a");
  ASSERT_TRUE(cache.Find("client-b scope-a", seconds(60), &found).ok());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->access_token, "t-b");
  ASSERT_TRUE(cache.Find("client-c scope-a", seconds(60), &found).ok());
  EXPECT_FALSE(found.has_value());
  fs::remove_all(dir);
}

TEST(TokenCacheFile, ATokenAboutToExpireIsNotFound) {
  fs::path dir = testing::MakeScratchDir("globus");
  TokenCache cache((dir / "tokens.json").string());
  ASSERT_TRUE(cache.Store("k", TokenFor("short", seconds(30))).ok());
  std::optional<GrantedToken> found;
  ASSERT_TRUE(cache.Find("k", seconds(60), &found).ok());
  EXPECT_FALSE(found.has_value());
  ASSERT_TRUE(cache.Find("k", seconds(10), &found).ok());
  EXPECT_TRUE(found.has_value());
  fs::remove_all(dir);
}

TEST(TokenCacheFile, RefusesACacheOthersCanRead) {
  fs::path dir = testing::MakeScratchDir("globus");
  TokenCache cache((dir / "tokens.json").string());
  ASSERT_TRUE(cache.Store("k", TokenFor("t", seconds(3600))).ok());
  ASSERT_EQ(::chmod(cache.path().c_str(), 0644), 0);
  std::optional<GrantedToken> found;
  Status s = cache.Find("k", seconds(60), &found);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUsage);
  EXPECT_FALSE(found.has_value());
  EXPECT_FALSE(cache.Store("k2", TokenFor("t2", seconds(3600))).ok());
  fs::remove_all(dir);
}

TEST(TokenCacheFile, MakesTheFoldersAboveIt) {
  fs::path dir = testing::MakeScratchDir("globus");
  // As on a fresh machine, where ~/.cache does not exist yet.
  TokenCache cache(
      (dir / "home" / ".cache" / "ferry" / "tokens.json").string());
  ASSERT_TRUE(cache.Store("k", TokenFor("t", seconds(3600))).ok());
  std::optional<GrantedToken> found;
  ASSERT_TRUE(cache.Find("k", seconds(60), &found).ok());
  ASSERT_TRUE(found.has_value());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "home" / ".cache").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
  fs::remove_all(dir);
}

TEST(TokenCacheFile, EntriesOfTheWrongShapeAreSkipped) {
  fs::path dir = testing::MakeScratchDir("globus");
  fs::path path = dir / "tokens.json";
  WriteWithMode(path,
                R"({"tokens":{"a":{"access_token":5,"expires_at":"x"},)"
                R"("b":{"access_token":"t","expires_at":9999999999,)"
                R"("scope":5,"resource_server":null},"c":7}})",
                0600);
  TokenCache cache(path.string());
  std::optional<GrantedToken> found;
  ASSERT_TRUE(cache.Find("a", seconds(60), &found).ok());
  EXPECT_FALSE(found.has_value());
  ASSERT_TRUE(cache.Find("b", seconds(60), &found).ok());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->access_token, "t");
  EXPECT_EQ(found->scope, "");
  ASSERT_TRUE(cache.Store("d", TokenFor("t-d", seconds(3600))).ok());
  ASSERT_TRUE(cache.Find("d", seconds(60), &found).ok());
  EXPECT_TRUE(found.has_value());
  fs::remove_all(dir);
}

TEST(TokenCacheFile, TokensThatCannotBeSentAreSkipped) {
  fs::path dir = testing::MakeScratchDir("globus");
  fs::path path = dir / "tokens.json";
  WriteWithMode(path,
                R"({"tokens":{"crlf":{"access_token":"t\r\nX-Evil: 1",)"
                R"("expires_at":9999999999},)"
                R"("space":{"access_token":"a b","expires_at":9999999999},)"
                R"("fine":{"access_token":"ab","expires_at":9999999999}}})",
                0600);
  TokenCache cache(path.string());
  std::optional<GrantedToken> found;
  for (const char* key : {"crlf", "space"}) {
    ASSERT_TRUE(cache.Find(key, seconds(60), &found).ok());
    EXPECT_FALSE(found.has_value()) << key;
  }
  ASSERT_TRUE(cache.Find("fine", seconds(60), &found).ok());
  EXPECT_TRUE(found.has_value());
  fs::remove_all(dir);
}

TEST(Tokens, OnlyVisibleAsciiGoesIntoAHeader) {
  EXPECT_TRUE(IsHeaderSafeToken("Ag3x.-_~+/="));
  EXPECT_FALSE(IsHeaderSafeToken(""));
  EXPECT_FALSE(IsHeaderSafeToken("a b"));
  EXPECT_FALSE(IsHeaderSafeToken("a\r\nX: 1"));
  EXPECT_FALSE(IsHeaderSafeToken("caf\xc3\xa9"));
}

TEST(TokenCacheFile, KeysDoNotDependOnScopeOrder) {
  EXPECT_EQ(TokenCacheKey("c", {"b", "a"}), TokenCacheKey("c", {"a", "b"}));
  EXPECT_NE(TokenCacheKey("c", {"a"}), TokenCacheKey("d", {"a"}));
  EXPECT_NE(TokenCacheKey("c", {"a"}), TokenCacheKey("c", {"a", "b"}));
}

}  // namespace
}  // namespace ferry
