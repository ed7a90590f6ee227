// Collections by id and tokens granted to applications, against the test
// collection's stand-ins for the Transfer API and Globus Auth: resolution,
// the client-credentials grant, renewal while a run goes on, the token
// cache, and that no token or secret ever shows where it should not.
#include <sys/stat.h>

#include <fstream>
#include <random>

#include "integration/harness.h"

namespace ferry::testing {
namespace {

// A random collection id that no server knows.
std::string UnknownId() {
  std::mt19937_64 random(std::random_device{}());
  char text[40];
  std::snprintf(text, sizeof text, "%08x-%04x-4%03x-a%03x-%012llx",
                static_cast<unsigned>(random()),
                static_cast<unsigned>(random() & 0xffff),
                static_cast<unsigned>(random() & 0xfff),
                static_cast<unsigned>(random() & 0xfff),
                static_cast<unsigned long long>(random() & 0xffffffffffffULL));
  return text;
}

std::string FirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

size_t CountLines(const fs::path& path, const std::string& needle) {
  std::ifstream in(path);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

class Auth : public CollectionTest {
 protected:
  void SetUp() override {
    CollectionTest::SetUp();
    ASSERT_FALSE(TestCollection().auth_url.empty())
        << "the test collection has no Globus Auth stand-in";
    cache_ = (work_ / "tokens.json").string();
    secret_ = FirstLine(TestCollection().client_secret_file);
    ASSERT_FALSE(secret_.empty());
  }

  // Where the Globus services are, and this test's token cache.
  std::vector<std::string> Services() const {
    return {"--auth-url",     TestCollection().auth_url,
            "--transfer-url", TestCollection().transfer_url,
            "--token-cache",  cache_};
  }
  static std::vector<std::string> Ca() {
    return {"--ca-file", TestCollection().ca_file};
  }
  // The hour-long application, with its secret from its file.
  std::vector<std::string> Client() const {
    return {"--client-id", TestCollection().client_id, "--client-secret-file",
            TestCollection().client_secret_file};
  }
  static std::vector<std::string> Join(
      std::initializer_list<std::vector<std::string>> parts) {
    std::vector<std::string> all;
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
  }
  // Serves `count` files of `size` bytes and returns their manifest.
  std::string ServeFiles(int count, size_t size) {
    std::vector<std::string> lines;
    for (int i = 0; i < count; ++i) {
      std::string name = "f" + std::to_string(i) + ".bin";
      Serve(name, RandomBytes(size, static_cast<uint64_t>(i) + 1));
      lines.push_back(name);
    }
    return Manifest(lines);
  }
  // `get` of `manifest` from this test's folder on the collection by id.
  std::vector<std::string> GetById(const std::string& manifest) const {
    return {"get",
            manifest,
            "--collection",
            TestCollection().collection_id,
            "--from",
            "/" + name_,
            "--to",
            dest_.string(),
            "--report",
            (work_ / "report.jsonl").string(),
            "--no-progress",
            "--ca-file",
            TestCollection().ca_file};
  }
  // Asserts that nothing a run printed holds a token or a secret.
  void ExpectNoSecrets(const RunResult& r,
                       const std::vector<std::string>& secrets) const {
    for (const std::string& secret : secrets) {
      ASSERT_FALSE(secret.empty());
      EXPECT_EQ(r.out.find(secret), std::string::npos) << "leaked on stdout";
      EXPECT_EQ(r.err.find(secret), std::string::npos) << "leaked on stderr";
      if (fs::exists(work_ / "report.jsonl")) {
        EXPECT_EQ(ReadFile(work_ / "report.jsonl").find(secret),
                  std::string::npos)
            << "leaked into the report";
      }
    }
  }

  std::string cache_;
  std::string secret_;
};

TEST_F(Auth, ResolvesACollectionIdToItsBaseUrl) {
  RunResult r = RunFerry(Join({{"resolve", TestCollection().collection_id},
                               Services(),
                               Ca(),
                               Client()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, TestCollection().url + "\n");
  ExpectNoSecrets(r, {secret_});
}

TEST_F(Auth, ACollectionWithHttpsOffHasNoBaseUrl) {
  RunResult r = RunFerry(Join({{"resolve", TestCollection().https_off_id},
                               Services(),
                               Ca(),
                               Client()}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("HTTPS turned off"), std::string::npos) << r.err;

  // A run by that id stops before it touches anything.
  std::string manifest = ServeFiles(1, 100);
  std::vector<std::string> args = GetById(manifest);
  args[3] = TestCollection().https_off_id;
  r = RunFerry(Join({args, Services(), Client()}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("HTTPS turned off"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(Auth, AnUnknownCollectionIdIsABadArgument) {
  std::string unknown = UnknownId();
  RunResult r =
      RunFerry(Join({{"resolve", unknown}, Services(), Ca(), Client()}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("knows no collection " + unknown), std::string::npos)
      << r.err;

  r = RunFerry(
      Join({{"resolve", "not-a-collection"}, Services(), Ca(), Client()}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is not a collection id"), std::string::npos) << r.err;

  // Nor does a token come for either: Globus Auth is not asked.
  for (const std::string& id : {unknown, std::string("not-a-collection")}) {
    r = RunFerry(Join(
        {{"token", "--collection", id, "-v"}, Services(), Ca(), Client()}));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.find("/https"), std::string::npos) << r.err;
  }
}

TEST_F(Auth, GlobusServicesInClearAreRefused) {
  std::string clear = "http://" + TestCollection().auth_url.substr(8);
  RunResult r = RunFerry(
      Join({{"token", "--collection", TestCollection().collection_id},
            Ca(),
            Client(),
            {"--auth-url", clear, "--transfer-url",
             TestCollection().transfer_url, "--token-cache", cache_}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--auth-url " + clear + " is refused"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(Auth, LearnsTheCollectionIdOfAUrl) {
  Serve("file.txt", "hello");
  RunResult r =
      RunFerry({"resolve", TestCollection().url + "/" + name_ + "/file.txt",
                "--ca-file", TestCollection().ca_file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, TestCollection().collection_id + "\n");
}

TEST_F(Auth, DownloadsByCollectionIdWithAGrantedToken) {
  std::string manifest = ServeFiles(5, 3000);
  RunResult r =
      RunFerry(Join({GetById(manifest), Services(), Client(), {"-v"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  ExpectNoSecrets(r, {secret_});
  // A Transfer API token to resolve the id, then the collection's, with
  // data_access: the stand-in is a mapped collection, not high-assurance.
  EXPECT_NE(r.err.find("for urn:globus:auth:scope:transfer.api.globus.org:all"),
            std::string::npos)
      << r.err;
  const std::string scopes = "for " +
                             std::string("https://auth.globus.org/scopes/") +
                             TestCollection().collection_id +
                             "/https https://auth.globus.org/scopes/" +
                             TestCollection().collection_id + "/data_access";
  EXPECT_NE(r.err.find(scopes), std::string::npos) << r.err;

  // The cache holds the tokens, for the owner alone, and a second run
  // asks Globus Auth for nothing.
  struct stat st {};
  ASSERT_EQ(::stat(cache_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  fs::remove_all(dest_);
  r = RunFerry(Join({GetById(manifest), Services(), Client(), {"-v"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(r.err.find("asking Globus Auth"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("using a cached token"), std::string::npos) << r.err;
}

TEST_F(Auth, LearnsTheIdFromTheBaseUrlForAGrant) {
  std::string manifest = ServeFiles(3, 1000);
  std::vector<std::string> args = GetArgs(manifest);
  RunResult r = RunFerry(Join({args, Services(), Client()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
}

TEST_F(Auth, WrongCredentialsAreRefusedWithoutShowingTheSecret) {
  std::string manifest = ServeFiles(1, 100);
  fs::path wrong = work_ / "wrong-secret";
  WriteFile(wrong, "not-the-secret-" + secret_.substr(0, 4) + "\n");
  ASSERT_EQ(::chmod(wrong.c_str(), 0600), 0);
  RunResult r = RunFerry(Join({GetById(manifest),
                               Services(),
                               {"--client-id", TestCollection().client_id,
                                "--client-secret-file", wrong.string()}}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("refused client"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not-the-secret"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dest_));

  // An unknown client fares no better.
  r = RunFerry(Join({GetById(manifest),
                     Services(),
                     {"--client-id", "no-such-client", "--client-secret-file",
                      TestCollection().client_secret_file}}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("refused client"), std::string::npos) << r.err;
  ExpectNoSecrets(r, {secret_});
}

TEST_F(Auth, TheSecretMayComeFromTheEnvironmentButNotFromAnArgument) {
  std::string manifest = ServeFiles(2, 500);
  RunResult r = RunFerry(Join({GetById(manifest), Services()}),
                         {{"FERRY_CLIENT_ID", TestCollection().client_id},
                          {"FERRY_CLIENT_SECRET", secret_}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();

  fs::remove_all(dest_);
  r = RunFerry(Join({GetById(manifest),
                     Services(),
                     {"--client-id", TestCollection().client_id,
                      "--client-secret", secret_}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--client-secret is refused"), std::string::npos)
      << r.err;
  ExpectNoSecrets(r, {secret_});
  EXPECT_FALSE(fs::exists(dest_));

  // Refused whatever else is given: with a token file, or for resolve.
  r = RunFerry(Join({GetArgs(manifest),
                     {"--token-file", TestCollection().token_ro_file,
                      "--client-secret", secret_}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--client-secret is refused"), std::string::npos)
      << r.err;
  r = RunFerry(Join({{"resolve", TestCollection().collection_id},
                     Services(),
                     Ca(),
                     {"--client-secret", secret_}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--client-secret is refused"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(Auth, ASecretFileOthersCanReadIsRefused) {
  std::string manifest = ServeFiles(1, 100);
  fs::path loose = work_ / "loose-secret";
  WriteFile(loose, secret_ + "\n");
  ASSERT_EQ(::chmod(loose.c_str(), 0644), 0);
  RunResult r =
      RunFerry(Join({GetById(manifest),
                     Services(),
                     {"--client-id", TestCollection().client_id,
                      "--client-secret-file", loose.string(), "-v"}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("mode 0644"), std::string::npos) << r.err;
  ExpectNoSecrets(r, {secret_});
  EXPECT_FALSE(fs::exists(dest_));
  EXPECT_EQ(r.err.find("asking Globus Auth"), std::string::npos)
      << "the secret went to Globus Auth all the same: " << r.err;
}

TEST_F(Auth, ATokenFileOthersCanReadIsRefused) {
  std::string manifest = ServeFiles(1, 100);
  fs::path loose = work_ / "loose-token";
  std::string token = FirstLine(TestCollection().token_ro_file);
  WriteFile(loose, token + "\n");
  ASSERT_EQ(::chmod(loose.c_str(), 0640), 0);
  RunResult r =
      RunFerry(Join({GetArgs(manifest), {"--token-file", loose.string()}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("mode 0640"), std::string::npos) << r.err;
  ExpectNoSecrets(r, {token});
  EXPECT_FALSE(fs::exists(dest_));
}

// A pipe in place of a secret would block a reader forever; it is refused.
TEST_F(Auth, APipeForASecretIsRefusedAtOnce) {
  std::string manifest = ServeFiles(1, 100);
  fs::path pipe = work_ / "pipe";
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  RunResult r = RunFerry(Join({GetById(manifest),
                               Services(),
                               {"--client-id", TestCollection().client_id,
                                "--client-secret-file", pipe.string()}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is not a file"), std::string::npos) << r.err;
  r = RunFerry(Join({GetArgs(manifest), {"--token-file", pipe.string()}}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is not a file"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(Auth, ATokenCacheOthersCanReadIsRefused) {
  std::string manifest = ServeFiles(1, 100);
  WriteFile(cache_, "{}\n");
  ASSERT_EQ(::chmod(cache_.c_str(), 0644), 0);
  RunResult r = RunFerry(Join({GetById(manifest), Services(), Client()}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("token cache"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dest_));
}

// The short-lived application's tokens last four seconds; a run of about
// ten seconds outlives two or three of them.
TEST_F(Auth, ATokenThatExpiresDuringARunIsRenewed) {
  std::string manifest = ServeFiles(24, 256 * 1024);
  std::string short_secret =
      FirstLine(TestCollection().short_client_secret_file);
  size_t grants =
      CountLines(TestCollection().auth_log, TestCollection().short_client_id);
  std::vector<std::string> args =
      Join({GetById(manifest),
            Services(),
            {"--client-id", TestCollection().short_client_id,
             "--client-secret-file", TestCollection().short_client_secret_file,
             "--streams", "2", "--max-rate", "600K", "-v"}});
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("renewed the collection's token"), std::string::npos)
      << r.err;
  // The collection's token was granted at least twice.
  EXPECT_GE(
      CountLines(TestCollection().auth_log, TestCollection().short_client_id) -
          grants,
      3u);
  for (const auto& line : ReadReport(work_ / "report.jsonl")) {
    EXPECT_EQ(line.value("status", ""), "ok") << line.dump();
  }
  ExpectNoSecrets(r, {short_secret});
}

// Tokens of a second: renewal cannot keep ahead of them, and must not try
// in a tight loop; the collection's refusals bring new ones, and the run
// completes.
TEST_F(Auth, TokensOfASecondAreNotAskedForInATightLoop) {
  ASSERT_FALSE(TestCollection().instant_client_id.empty())
      << "the test collection's clients.txt predates the one-second client; "
         "remove it and start the collection again";
  std::string manifest = ServeFiles(6, 256 * 1024);
  size_t grants =
      CountLines(TestCollection().auth_log, TestCollection().instant_client_id);
  RunResult r = RunFerry(Join(
      {GetById(manifest),
       Services(),
       {"--client-id", TestCollection().instant_client_id,
        "--client-secret-file", TestCollection().instant_client_secret_file,
        "--streams", "2", "--max-rate", "384K", "--no-token-cache"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  // About four seconds: a grant every two at most, plus those the
  // collection's refusals asked for (one per refusal of the current token).
  size_t asked = CountLines(TestCollection().auth_log,
                            TestCollection().instant_client_id) -
                 grants;
  EXPECT_GE(asked, 2u);
  EXPECT_LE(asked, 20u);
}

// A token the cache still trusts but the collection no longer takes (it
// was revoked, say): the first 401 brings a fresh grant, and the run ends
// as if nothing happened.
TEST_F(Auth, ARefusedTokenIsRenewedOnce) {
  std::string manifest = ServeFiles(4, 1000);
  // Fill the cache, then spoil its collection token.
  RunResult r = RunFerry(Join({GetById(manifest), Services(), Client()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto cache = nlohmann::json::parse(ReadFile(cache_));
  int spoiled = 0;
  for (auto& [key, entry] : cache["tokens"].items()) {
    if (key.find("/https") != std::string::npos) {
      entry["access_token"] =
          "revoked-" + entry["access_token"].get<std::string>();
      ++spoiled;
    }
  }
  ASSERT_EQ(spoiled, 1) << cache.dump();
  WriteFile(cache_, cache.dump());
  ASSERT_EQ(::chmod(cache_.c_str(), 0600), 0);

  fs::remove_all(dest_);
  r = RunFerry(Join({GetById(manifest), Services(), Client()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("refused the token"), std::string::npos) << r.err;
}

TEST_F(Auth, TheTokenCommandPrintsAWorkingTokenOnStdoutOnly) {
  RunResult r =
      RunFerry(Join({{"token", "--collection", TestCollection().collection_id},
                     Services(),
                     Ca(),
                     Client()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  ASSERT_EQ(r.out.back(), '\n');
  std::string token = r.out.substr(0, r.out.size() - 1);
  EXPECT_EQ(token.find('\n'), std::string::npos);
  EXPECT_EQ(r.err.find(token), std::string::npos);

  std::string manifest = ServeFiles(2, 700);
  r = RunFerry(GetArgs(manifest), {{"FERRY_TOKEN", token}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();

  // Learned from a URL instead of an id: the same token, from the cache.
  RunResult again = RunFerry(
      Join({{"token", "--at", TestCollection().url + "/" + name_ + "/f0.bin"},
            Services(),
            Ca(),
            Client()}));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, token + "\n");
}

// The whole output of a run traced with -v -v -v, which logs every header
// line, holds neither the collection's token nor the application's secret.
TEST_F(Auth, AVerboseTraceShowsNoTokenOrSecret) {
  std::string manifest = ServeFiles(3, 2000);
  std::string static_token = FirstLine(TestCollection().token_ro_file);
  std::vector<std::string> args = GetArgs(manifest);
  args.insert(args.end(), {"--token-file", TestCollection().token_ro_file, "-v",
                           "-v", "-v"});
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The trace ran, and showed where the token went.
  EXPECT_NE(r.err.find("Bearer [redacted]"), std::string::npos) << r.err;
  ExpectNoSecrets(r, {static_token});

  // A grant, traced: its Basic credentials are cut out of the trace, and
  // neither the secret nor the tokens it brought (kept in the cache) show.
  fs::remove_all(dest_);
  r = RunFerry(
      Join({GetById(manifest), Services(), Client(), {"-v", "-v", "-v"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("Basic [redacted]"), std::string::npos) << r.err;
  auto cache = nlohmann::json::parse(ReadFile(cache_));
  std::vector<std::string> secrets = {secret_};
  for (const auto& [key, entry] : cache["tokens"].items()) {
    secrets.push_back(entry["access_token"].get<std::string>());
  }
  EXPECT_EQ(secrets.size(), 3u) << cache.dump();
  ExpectNoSecrets(r, secrets);
}

// The collection redirects to another host: ferry never follows, so the
// token never reaches it.
TEST_F(Auth, ARedirectToAnotherHostNeverSeesTheToken) {
  ASSERT_FALSE(TestCollection().elsewhere_url.empty());
  Serve("file.txt", "data");
  std::string manifest = Manifest({"file.txt"});
  std::error_code ec;
  uintmax_t before = fs::file_size(TestCollection().elsewhere_log, ec);
  if (ec) before = 0;
  RunResult r = RunFerry({"get", manifest, "--from",
                          TestCollection().url + "/_elsewhere/" + name_, "--to",
                          dest_.string(), "--ca-file", TestCollection().ca_file,
                          "--token-file", TestCollection().token_ro_file,
                          "--attempts", "1", "--no-progress"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("redirect"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dest_ / "file.txt"));
  std::string seen = ReadFile(TestCollection().elsewhere_log).substr(before);
  EXPECT_EQ(seen.find("auth=present"), std::string::npos) << seen;
  EXPECT_EQ(seen.find(name_), std::string::npos)
      << "ferry followed the redirect: " << seen;
}

// Any server can send browsers to the login of any collection; one that
// names ours gets no token for it.
TEST_F(Auth, AServerPosingAsTheCollectionGetsNoToken) {
  ASSERT_FALSE(TestCollection().elsewhere_url.empty());
  const std::string impostor =
      TestCollection().elsewhere_url + "/_impostor/" + name_;
  std::error_code ec;
  uintmax_t before = fs::file_size(TestCollection().elsewhere_log, ec);
  if (ec) before = 0;
  RunResult r =
      RunFerry(Join({{"get", Manifest({"file.txt"}), "--from", impostor, "--to",
                      dest_.string(), "--no-progress"},
                     Ca(),
                     Services(),
                     Client()}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(
      r.err.find("says it is collection " + TestCollection().collection_id),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("no token for it goes to another server"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dest_));

  r = RunFerry(Join({{"token", "--at", impostor}, Ca(), Services(), Client()}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");

  std::string seen = ReadFile(TestCollection().elsewhere_log).substr(before);
  EXPECT_NE(seen.find("/_impostor/" + name_), std::string::npos)
      << "the impostor was never asked: " << seen;
  EXPECT_EQ(seen.find("auth=present"), std::string::npos) << seen;
}

}  // namespace
}  // namespace ferry::testing
