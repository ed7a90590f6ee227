// Faults between ferry and the collection, made by the chaos proxy
// (tests/chaos/chaos-proxy): cut, stalled, trickled and truncated bodies,
// busy servers, GOAWAY, excess bytes, login redirects, expiring tokens,
// a certificate for another name. Each test asserts the final tree byte
// for byte and the report's statuses.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>

#include "ferry/digest.h"
#include "integration/harness.h"

namespace ferry::testing {
namespace {

using Json = nlohmann::json;

class Chaos : public CollectionTest {
 protected:
  // `get` arguments that go through `proxy` instead of straight to the
  // collection.
  std::vector<std::string> Through(const ChaosProxy& proxy,
                                   const std::string& manifest,
                                   std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = GetArgs(manifest);
    *(std::find(args.begin(), args.end(), "--from") + 1) =
        proxy.url() + "/" + name_;
    if (std::find(extra.begin(), extra.end(), "--token-file") == extra.end()) {
      args.push_back("--token-file");
      args.push_back(TestCollection().token_rw_file);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::vector<Json> Report() const {
    return ReadReport(work_ / "report.jsonl");
  }
  Json ReportOf(const std::string& path) const {
    for (const Json& line : Report()) {
      if (line["path"] == path) return line;
    }
    return Json();
  }
  static std::string Hex(const std::string& data) {
    return HashBuffer(data.data(), data.size()).ToHex();
  }
  // A rule for one file of this test.
  Json Rule(const std::string& file, Json fault) const {
    fault["path"] = "/" + name_ + "/" + file + "$";
    return fault;
  }
  // Serves `count` files named PREFIX0, PREFIX1, ... of `size` bytes;
  // returns their names.
  std::vector<std::string> ServeMany(const std::string& prefix, int count,
                                     size_t size) {
    std::vector<std::string> names;
    for (int i = 0; i < count; ++i) {
      names.push_back(prefix + std::to_string(i));
      Serve(names.back(), RandomBytes(size, 1000 * size + i));
    }
    return names;
  }
  // Rules under which "old-token" stands for the collection's real token
  // for its first ten requests and is refused after, while "new-token"
  // always stands for it. The token file starts with the old one.
  Json ExpiringToken() const {
    const std::string real = ReadFile(TestCollection().token_rw_file);
    const std::string token = real.substr(0, real.find_first_of("\r\n"));
    return Json::array(
        {{{"fault", "expire_token"},
          {"token", "old-token"},
          {"real", token},
          {"valid_requests", 10}},
         {{"fault", "alias"}, {"token", "new-token"}, {"real", token}}});
  }
  fs::path OldTokenFile() const {
    WriteFile(work_ / "token", "old-token\n");
    fs::permissions(work_ / "token",
                    fs::perms::owner_read | fs::perms::owner_write);
    return work_ / "token";
  }
};

TEST_F(Chaos, ACutDownloadContinuesWithARange) {
  const std::string data = RandomBytes(24u << 20, 1);
  Serve("big", data);
  ChaosProxy proxy(Json::array({Rule(
      "big", {{"fault", "cut"}, {"after", 5 << 20}, {"method", "GET"}})}));
  ASSERT_FALSE(proxy.url().empty());
  RunResult r = RunFerry(Through(proxy, Manifest({"big\t\t" + Hex(data)})));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  Json line = ReportOf("big");
  EXPECT_EQ(line["status"], "ok");
  EXPECT_EQ(line["attempts"], 2);
  EXPECT_TRUE(line.contains("last_error")) << line;
  // The second GET asked only for what the first did not bring.
  std::vector<Request> gets;
  for (const Request& q : Requests()) {
    if (q.method == "GET") gets.push_back(q);
  }
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_TRUE(gets[0].range.empty());
  EXPECT_EQ(gets[1].status, 206);
  EXPECT_EQ(gets[1].range.rfind("bytes=", 0), 0u) << gets[1].range;
  EXPECT_NE(gets[1].range, "bytes=0-");
  EXPECT_EQ(proxy.Stats()["faults_injected"], 1);
}

TEST_F(Chaos, ACollectionThatIgnoresRangesGetsTheWholeFileAgain) {
  const std::string data = RandomBytes(12u << 20, 2);
  WriteFile(TestCollection().root / name_ / "f", data);
  ChaosProxy proxy(Json::array({{{"path", "/_noranges/" + name_ + "/f$"},
                                 {"fault", "cut"},
                                 {"after", 3 << 20}}}));
  std::vector<std::string> args =
      Through(proxy, Manifest({"f\t\t" + Hex(data)}));
  *(std::find(args.begin(), args.end(), "--from") + 1) =
      proxy.url() + "/_noranges/" + name_;
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(ReportOf("f")["attempts"], 2);
}

TEST_F(Chaos, CutsThatLetADownloadMoveOnDoNotUseUpItsAttempts) {
  const std::string data = RandomBytes(6u << 20, 11);
  Serve("cut", data);
  // Every answer is cut after 1 MiB; each attempt continues where the
  // last one stopped.
  ChaosProxy proxy(Json::array(
      {Rule("cut", {{"fault", "cut"}, {"after", 1 << 20}, {"times", -1}})}));
  RunResult r = RunFerry(Through(proxy, Manifest({"cut\t\t" + Hex(data)}),
                                 {"--attempts", "2", "--backoff", "0"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_GE(ReportOf("cut")["attempts"], 6);
}

TEST_F(Chaos, ADownloadThatGivesUpKeepsItsBytesForTheSameCommand) {
  const std::string data = RandomBytes(6u << 20, 12);
  Serve("f", data);
  // The first answer brings 1 MiB; the next two bring nothing.
  ChaosProxy proxy(
      Json::array({Rule("f", {{"fault", "cut"}, {"after", 1 << 20}}),
                   Rule("f", {{"fault", "cut"}, {"after", 0}, {"times", 2}})}));
  const std::vector<std::string> args =
      Through(proxy, Manifest({"f\t\t" + Hex(data)}),
              {"--attempts", "2", "--backoff", "0"});
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(ReportOf("f")["status"], "failed");
  EXPECT_EQ(fs::file_size(dest_ / ".f.ferry-part"), 1u << 20);
  EXPECT_NE(r.err.find("run the same command again"), std::string::npos)
      << r.err;
  // The rules are spent: the same command fetches only the rest.
  r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  // Only the very first GET asked for the whole file; every later one,
  // the rerun's too, for the bytes after the first MiB. (Cut requests may
  // reach the log late, so no order is assumed.)
  size_t whole = 0, continued = 0;
  for (const Request& q : Requests()) {
    if (q.method != "GET") continue;
    if (q.range.empty()) {
      ++whole;
    } else {
      EXPECT_EQ(q.range, "bytes=" + std::to_string(1 << 20) + "-");
      EXPECT_EQ(q.status, 206);
      ++continued;
    }
  }
  EXPECT_EQ(whole, 1u);
  EXPECT_EQ(continued, 3u);  // two cut at once, then the rerun's
}

TEST_F(Chaos, TruncatedBodiesAreRetriedOnBothProtocols) {
  const std::string a = RandomBytes(3u << 20, 3);
  Serve("a", a);
  for (bool http1 : {false, true}) {
    fs::remove_all(dest_);
    ChaosProxy proxy(
        Json::array({Rule("a", {{"fault", "truncate"}, {"after", 1 << 20}})}));
    std::vector<std::string> extra;
    if (http1) extra.push_back("--http1.1");
    RunResult r = RunFerry(Through(proxy, Manifest({"a\t\t" + Hex(a)}), extra));
    ASSERT_EQ(r.exit_code, 0) << (http1 ? "HTTP/1.1: " : "HTTP/2: ") << r.err;
    ExpectSameTree();
    EXPECT_EQ(ReportOf("a")["attempts"], 2);
  }
}

TEST_F(Chaos, AStalledTransferIsAbandonedAndRetried) {
  const std::string data = RandomBytes(2u << 20, 4);
  Serve("slow", data);
  ChaosProxy proxy(Json::array({Rule(
      "slow", {{"fault", "stall"}, {"after", 1 << 19}, {"seconds", 30}})}));
  auto start = std::chrono::steady_clock::now();
  RunResult r = RunFerry(Through(proxy, Manifest({"slow\t\t" + Hex(data)}),
                                 {"--stall-timeout", "2"}));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(ReportOf("slow")["attempts"], 2);
  EXPECT_LT(seconds, 25);  // the stall did not run its 30 s
}

TEST_F(Chaos, ATrickleIsSlowButNotAFailure) {
  const std::string data = RandomBytes(300 << 10, 5);
  Serve("t", data);
  ChaosProxy proxy(
      Json::array({Rule("t", {{"fault", "trickle"}, {"rate", 200 << 10}})}));
  RunResult r =
      RunFerry(Through(proxy, Manifest({"t"}), {"--stall-timeout", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(ReportOf("t")["attempts"], 1);
}

TEST_F(Chaos, RetryAfterHoldsBackTheWholeRun) {
  std::vector<std::string> lines = ServeMany("f", 20, 1000);
  // The first request for f0 is told to come back in 2 s; with an HTTP
  // date, f1 once in 1 s.
  ChaosProxy proxy(Json::array(
      {Rule("f0", {{"fault", "status"}, {"status", 503}, {"retry_after", "2"}}),
       Rule("f1", {{"fault", "status"},
                   {"status", 429},
                   {"retry_after", "Thu, 01 Jan 1970 00:00:00 GMT"}})}));
  RunResult r = RunFerry(Through(proxy, Manifest(lines), {"--streams", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("held back"), std::string::npos) << r.err;
  EXPECT_EQ(ReportOf("f0")["attempts"], 2);
  EXPECT_EQ(ReportOf("f1")["attempts"], 2);
  // With one stream, the other files came after f0's refusal: none of
  // them may have been asked for in the 2 s the server asked for.
  std::vector<std::string> gets;
  for (const std::string& line : proxy.Log()) {
    if (line.find(" GET ") != std::string::npos) gets.push_back(line);
  }
  ASSERT_GE(gets.size(), 2u);
  EXPECT_NE(gets[0].find("/f0 503"), std::string::npos) << gets[0];
  EXPECT_NE(gets[1].find("/f0 200"), std::string::npos)
      << "the run went on while the server asked to wait: " << gets[1];
}

TEST_F(Chaos, NoNewFileStartsWhileTooManyAreFailing) {
  std::vector<std::string> lines = ServeMany("m", 5, 1000);
  // m0 is refused twice, without Retry-After.
  auto order = [&](const std::string& max_failing, const std::string& backoff) {
    fs::remove_all(dest_);
    ChaosProxy proxy(Json::array(
        {Rule("m0", {{"fault", "status"}, {"status", 503}, {"times", 2}})}));
    RunResult r = RunFerry(Through(proxy, Manifest(lines),
                                   {"--streams", "1", "--backoff", backoff,
                                    "--max-failing", max_failing}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ExpectSameTree();
    std::vector<std::string> gets;
    for (const std::string& line : proxy.Log()) {
      size_t get = line.find(" GET /" + name_ + "/");
      if (get == std::string::npos) continue;
      std::string rest = line.substr(get + 6 + name_.size() + 1);
      gets.push_back(rest.substr(0, rest.find(' ')));
    }
    return gets;
  };
  // One failing file is the limit: it alone is asked for until it passes.
  EXPECT_EQ(order("1", "0.2"), (std::vector<std::string>{"m0", "m0", "m0", "m1",
                                                         "m2", "m3", "m4"}));
  // With room for more, the others go on while it waits (two waits of up
  // to one and two seconds, against a few milliseconds per file).
  std::vector<std::string> relaxed = order("2", "1");
  auto last_m0 = std::find(relaxed.rbegin(), relaxed.rend(), "m0");
  ASSERT_NE(last_m0, relaxed.rend());
  EXPECT_GT(relaxed.rend() - last_m0, 3)
      << "m0 was retried before any other file started";
}

// 503s without Retry-After: the run halves its streams, still finishes
// every file, and says so.
TEST_F(Chaos, OverloadCutsTheStreamsAndTheRunStillFinishes) {
  std::vector<std::string> lines = ServeMany("o", 100, 2000);
  ChaosProxy proxy(Json::array({{{"path", "/" + name_ + "/o"},
                                 {"method", "GET"},
                                 {"fault", "status"},
                                 {"status", 503},
                                 {"times", 8}}}));
  RunResult r = RunFerry(Through(proxy, Manifest(lines),
                                 {"--streams", "16", "--backoff", "0.05"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(proxy.Stats()["faults_injected"], 8);
  // One burst of refusals is one cut, from 16 to 8 (a second burst a
  // second later could halve again).
  EXPECT_TRUE(r.err.find("streams cut to 8 ") != std::string::npos ||
              r.err.find("streams cut to 4 ") != std::string::npos)
      << r.err;
}

TEST_F(Chaos, AGoawayWithStreamsOpenLosesNothing) {
  std::vector<std::string> lines = ServeMany("g", 12, 2u << 20);
  ChaosProxy proxy(
      Json::array({Rule("g3", {{"fault", "goaway"}, {"after", 1 << 20}})}));
  RunResult r = RunFerry(Through(proxy, Manifest(lines), {"--streams", "12"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(proxy.Stats()["faults_injected"], 1);
  for (const Json& line : Report()) EXPECT_EQ(line["status"], "ok") << line;
}

TEST_F(Chaos, BytesBeyondContentLengthNeverReachTheFile) {
  const std::string data = RandomBytes(100000, 6);
  Serve("x", data);
  for (bool http1 : {false, true}) {
    fs::remove_all(dest_);
    ChaosProxy proxy(
        Json::array({Rule("x", {{"fault", "excess"}, {"extra", 4096}})}));
    std::vector<std::string> extra;
    if (http1) extra.push_back("--http1.1");
    RunResult r = RunFerry(Through(proxy, Manifest({"x"}), extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ExpectSameTree();
  }
}

TEST_F(Chaos, ALoginRedirectIsNeverSavedAsTheFile) {
  Serve("secret", "real data");
  Serve("login.html", "<html><body>Please log in</body></html>");
  ChaosProxy proxy(
      Json::array({Rule("secret", {{"fault", "redirect"},
                                   {"location", "/" + name_ + "/login.html"},
                                   {"times", -1}})}));
  RunResult r = RunFerry(Through(proxy, Manifest({"secret"})));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("redirect"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  Json line = ReportOf("secret");
  EXPECT_EQ(line["status"], "failed");
  EXPECT_EQ(line["attempts"], 1);
}

TEST_F(Chaos, ATokenThatExpiresHalfwayIsReplacedFromItsFile) {
  std::vector<std::string> lines = ServeMany("t", 40, 200000);
  ChaosProxy proxy(ExpiringToken());
  const fs::path token_file = OldTokenFile();
  std::vector<std::string> args =
      Through(proxy, Manifest(lines),
              {"--token-file", token_file.string(), "--streams", "2",
               "--max-rate", "2M"});
  // Whatever renews the token writes the new one once the run is going,
  // well before its tenth request (the rate makes that a second later,
  // however busy the machine).
  auto going = [this] { return fs::exists(dest_ / "t0"); };
  RunResult r = RunFerryWhile(
      args, going, [&](pid_t) { WriteFile(token_file, "new-token\n"); });
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("fresh one"), std::string::npos) << r.err;
  EXPECT_GE(proxy.Stats()["faults_by_kind"].value("expired_token", 0), 1);
  for (const Json& line : Report()) EXPECT_EQ(line["status"], "ok") << line;
  EXPECT_EQ(r.err.find("new-token"), std::string::npos);
  EXPECT_EQ(r.err.find("old-token"), std::string::npos);
}

TEST_F(Chaos, AnExpiredTokenWithNoFreshOneStopsTheRunAndTheRerunFinishes) {
  std::vector<std::string> lines = ServeMany("e", 30, 50000);
  ChaosProxy proxy(ExpiringToken());
  const fs::path token_file = OldTokenFile();
  const std::string manifest = Manifest(lines);
  std::vector<std::string> args = Through(
      proxy, manifest, {"--token-file", token_file.string(), "--streams", "1"});
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("HTTP 401"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stopped early"), std::string::npos) << r.err;
  size_t arrived = ListTree(dest_).size();
  EXPECT_GE(arrived, 5u);
  EXPECT_LT(arrived, 30u);
  for (const std::string& name : ListTree(dest_)) {
    EXPECT_EQ(ReadFile(dest_ / name), ReadFile(src_ / name)) << name;
  }
  // The same command with a fresh token in the file fetches only the rest.
  WriteFile(token_file, "new-token\n");
  const size_t before = Requests().size();
  r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  size_t gets = 0;
  std::vector<Request> requests = Requests();
  for (size_t i = before; i < requests.size(); ++i) {
    if (requests[i].method == "GET") ++gets;
  }
  EXPECT_EQ(gets, 30u - arrived);
}

TEST_F(Chaos, ACertificateForAnotherNameIsRefusedUnlessChecksAreOff) {
  Serve("f", "data");
  // The collection's certificate names 127.0.0.1, not 127.0.0.2.
  ChaosProxy proxy(Json::array(), {"--listen", "127.0.0.2"});
  ASSERT_FALSE(proxy.url().empty());
  const std::string manifest = Manifest({"f"});
  RunResult r = RunFerry(Through(proxy, manifest));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("certificate"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  EXPECT_TRUE(proxy.Log().empty());  // no request was sent

  r = RunFerry(Through(proxy, manifest, {"--insecure"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("NOT checked"), std::string::npos) << r.err;
  ExpectSameTree();

  // Quiet runs are told too.
  fs::remove_all(dest_);
  r = RunFerry(Through(proxy, manifest, {"--insecure", "-q"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("NOT checked"), std::string::npos) << r.err;
}

TEST_F(Chaos, ACutUploadIsSentAgainWhole) {
  const std::string data = RandomBytes(6u << 20, 7);
  WriteFile(work_ / "up" / "u", data);
  ChaosProxy proxy(Json::array(
      {Rule("u", {{"fault", "cut"}, {"after", 2 << 20}, {"method", "PUT"}})}));
  const std::string manifest = Manifest({"u\t\t" + Hex(data)});
  RunResult r = RunFerry({"put", manifest, "--from", (work_ / "up").string(),
                          "--to", proxy.url() + "/" + name_, "--ca-file",
                          TestCollection().ca_file, "--token-file",
                          TestCollection().token_rw_file, "--report",
                          (work_ / "report.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ReadFile(src_ / "u") == data);
  EXPECT_EQ(ReportOf("u")["attempts"], 2);
}

TEST_F(Chaos, TheDeadlineStopsTheRunAndTheSameCommandFinishesIt) {
  const std::string data = RandomBytes(8u << 20, 8);
  Serve("slow", data);
  Serve("quick", "quick");
  ChaosProxy proxy(
      Json::array({Rule("slow", {{"fault", "trickle"}, {"rate", 1 << 20}})}));
  std::vector<std::string> args =
      Through(proxy, Manifest({"quick", "slow\t\t" + Hex(data)}));
  std::vector<std::string> limited = args;
  limited.push_back("--deadline");
  limited.push_back("2");
  RunResult r = RunFerry(limited);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("deadline"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(dest_ / "quick"), "quick");
  EXPECT_TRUE(fs::exists(dest_ / ".slow.ferry-part"));
  EXPECT_FALSE(fs::exists(dest_ / "slow"));
  // The trickle rule is used up: the rest comes at full speed, as a range.
  r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  // The first run's GET may reach the log after the second's: the proxy
  // ends it upstream only once the trickle notices ferry has gone.
  size_t continued = 0;
  for (const Request& q : Requests()) {
    if (q.method == "GET" && !q.range.empty() && q.status == 206) ++continued;
  }
  EXPECT_EQ(continued, 1u);
}

}  // namespace
}  // namespace ferry::testing
