// `ferry get` against the real local collection: real TLS, HTTP/2, nginx,
// io_uring and files, compared byte for byte with their sources.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "ferry/digest.h"
#include "integration/harness.h"

namespace ferry::testing {
namespace {

using Json = nlohmann::json;

class Get : public CollectionTest {
 protected:
  RunResult GetWith(const std::string& manifest, const std::string& token_file,
                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = GetArgs(manifest);
    if (!token_file.empty()) {
      args.push_back("--token-file");
      args.push_back(token_file);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args);
  }
  std::vector<Json> Report() { return ReadReport(work_ / "report.jsonl"); }
  static std::string Hex(const std::string& data) {
    return HashBuffer(data.data(), data.size()).ToHex();
  }
};

TEST_F(Get, EmptyAndOneByteFilesArrive) {
  Serve("empty", "");
  Serve("one", "x");
  RunResult r =
      GetWith(Manifest({"empty\t0\t" + Hex(""), "one\t1\t" + Hex("x")}),
              TestCollection().token_rw_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 2u);
  for (const Json& line : report) {
    EXPECT_EQ(line["status"], "ok");
    EXPECT_EQ(line["http_status"], 200);
    EXPECT_EQ(line["attempts"], 1);
  }
  EXPECT_NE(r.err.find("2 arrived (2 verified"), std::string::npos) << r.err;
}

TEST_F(Get, LargeFileArrivesVerified) {
  const std::string data = RandomBytes(320u << 20, 1);
  Serve("big/file.bin", data);
  std::string line =
      "big/file.bin\t" + std::to_string(data.size()) + "\t" + Hex(data);
  RunResult r = GetWith(Manifest({line}), TestCollection().token_ro_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0]["bytes"], data.size());
  EXPECT_EQ(report[0]["xxh128"], Hex(data));
}

TEST_F(Get, TenThousandSmallFilesArrive) {
  std::vector<std::string> lines;
  for (int i = 0; i < 10000; ++i) {
    std::string rel = "d" + std::to_string(i % 97) + "/f" + std::to_string(i);
    Serve(rel, RandomBytes(1 + (i * 37) % 9000, static_cast<uint64_t>(i)));
    lines.push_back(rel);
  }
  RunResult r = GetWith(Manifest(lines), TestCollection().token_rw_file,
                        {"--streams", "64", "--connections", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_EQ(Report().size(), 10000u);
  // Many streams multiplexed over a few reused connections.
  ExpectRequestsOver("HTTP/2.0", 10000, 2);
}

TEST_F(Get, AwkwardNamesAndDeepFoldersArrive) {
  std::vector<std::string> names = {
      "with space.txt", "hash#tag",       "what?.txt",  "100%",
      "%41%2F",         "plus+and&eq=",   "naïve café", "日本語/ファイル",
      "'quote\"",       " leading space", "semi;colon", "tilde~and,comma"};
  std::string deep;
  for (int i = 0; i < 24; ++i) deep += "level" + std::to_string(i) + "/";
  names.push_back(deep + "bottom.txt");
  std::vector<std::string> lines;
  for (size_t i = 0; i < names.size(); ++i) {
    Serve(names[i], "content of " + names[i]);
    lines.push_back(names[i]);
  }
  RunResult r = GetWith(Manifest(lines), TestCollection().token_rw_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
}

TEST_F(Get, HttpOneWorksToo) {
  for (int i = 0; i < 50; ++i) {
    Serve("f" + std::to_string(i), RandomBytes(70000, i));
  }
  std::vector<std::string> lines;
  for (int i = 0; i < 50; ++i) lines.push_back("f" + std::to_string(i));
  RunResult r = GetWith(Manifest(lines), TestCollection().token_rw_file,
                        {"--http1.1", "--streams", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  // Kept alive: eight connections carry the fifty requests.
  ExpectRequestsOver("HTTP/1.1", 50, 8);
}

TEST_F(Get, MissingTokenFailsClearlyAndWritesNothing) {
  Serve("a", "a");
  Serve("b/c", "c");
  RunResult r = GetWith(Manifest({"a", "b/c"}), "");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("token"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
}

TEST_F(Get, ReadOnlyTokenCanGet) {
  Serve("x/y", RandomBytes(5000, 3));
  RunResult r = GetWith(Manifest({"x/y"}), TestCollection().token_ro_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
}

TEST_F(Get, TokenFromEnvironmentIsUsed) {
  Serve("x", "x");
  std::vector<std::string> args = GetArgs(Manifest({"x"}));
  std::string token = ReadFile(TestCollection().token_ro_file);
  while (!token.empty() && token.back() == '\n') token.pop_back();
  RunResult r = RunFerry(args, {{"FERRY_TOKEN", token}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
}

TEST_F(Get, OneMissingFileFailsAloneAndIsNamed) {
  std::vector<std::string> lines;
  for (int i = 0; i < 40; ++i) {
    Serve("f" + std::to_string(i), std::to_string(i));
    lines.push_back("f" + std::to_string(i));
  }
  lines.insert(lines.begin() + 20, "not-there");
  RunResult r = GetWith(Manifest(lines), TestCollection().token_rw_file);
  EXPECT_EQ(r.exit_code, 1);
  ExpectSameTree();
  int failed = 0;
  for (const Json& line : Report()) {
    if (line["status"] == "ok") continue;
    ++failed;
    EXPECT_EQ(line["path"], "not-there");
    EXPECT_EQ(line["http_status"], 404);
    EXPECT_EQ(line["attempts"], 1);
  }
  EXPECT_EQ(failed, 1);
  EXPECT_NE(r.err.find("not-there"), std::string::npos) << r.err;
}

TEST_F(Get, RedirectIsNeverFollowed) {
  // The collection answers /_moved/P with a redirect to /P, which exists.
  Serve("target", "the redirect's target");
  std::vector<std::string> args = {
      "get",          Manifest({"_moved/" + name_ + "/target"}),
      "--from",       TestCollection().url,
      "--to",         dest_.string(),
      "--ca-file",    TestCollection().ca_file,
      "--token-file", TestCollection().token_rw_file,
      "--report",     (work_ / "report.jsonl").string()};
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("redirect"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0]["http_status"], 302);
  std::string log = ReadFile(TestCollection().access_log);
  EXPECT_EQ(log.find("GET /" + name_ + "/target "), std::string::npos);
}

TEST_F(Get, ChecksumMismatchLeavesNothingUnderTheFinalName) {
  Serve("good", "good data");
  Serve("bad", "bad data");
  RunResult r = GetWith(
      Manifest({"good\t\t" + Hex("good data"), "bad\t\t" + Hex("other")}),
      TestCollection().token_rw_file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(ListTree(dest_), std::vector<std::string>{"good"});
  EXPECT_NE(r.err.find("differs from the manifest"), std::string::npos);
}

TEST_F(Get, SizeMismatchFailsTheFile) {
  Serve("f", "12345");
  RunResult r = GetWith(Manifest({"f\t4"}), TestCollection().token_rw_file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(ListTree(dest_).empty());
}

TEST_F(Get, BadManifestRefusesToStart) {
  Serve("ok", "ok");
  RunResult r = GetWith(Manifest({"ok", "../escape", "/abs", "a//b"}),
                        TestCollection().token_rw_file);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(":2: '..' segment"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":3: absolute"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":4: empty path segment"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
}

TEST_F(Get, DigestsAgreeWithXxhsum) {
  Serve("a", RandomBytes(100000, 9));
  Serve("b", RandomBytes(3, 10));
  RunResult r = GetWith(Manifest({"a", "b"}), TestCollection().token_rw_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const Json& line : Report()) {
    std::string path = line["path"];
    EXPECT_EQ(line["xxh128"], XxhsumOf(src_ / path)) << path;
  }
}

TEST_F(Get, UnknownCertificateAuthorityStopsTheRun) {
  Serve("a", "a");
  std::vector<std::string> args = GetArgs(Manifest({"a"}));
  // Drop --ca-file: the system store does not know the test CA.
  auto it = std::find(args.begin(), args.end(), "--ca-file");
  args.erase(it, it + 2);
  args.push_back("--token-file");
  args.push_back(TestCollection().token_rw_file);
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("TLS"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
}

TEST_F(Get, ExistingDestinationFilesAreReplacedWhole) {
  Serve("f", "new");
  WriteFile(dest_ / "f", "an older and longer version");
  RunResult r = GetWith(Manifest({"f"}), TestCollection().token_rw_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dest_ / "f"), "new");
}

TEST_F(Get, UnreachableCollectionIsRetriedThenReported) {
  // Nothing listens on port 1 of loopback: every attempt is refused, which
  // is transient, so the file gets all its attempts before it fails.
  std::vector<std::string> args = {
      "get",          Manifest({"a"}),
      "--from",       "https://127.0.0.1:1",
      "--to",         dest_.string(),
      "--ca-file",    TestCollection().ca_file,
      "--token-file", TestCollection().token_rw_file,
      "--attempts",   "3",
      "--report",     (work_ / "report.jsonl").string()};
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1);
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0]["status"], "failed");
  EXPECT_EQ(report[0]["attempts"], 3);
  EXPECT_NE(r.err.find("attempt 1/3"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
}

TEST_F(Get, RepeatedEntriesAreFetchedOnce) {
  const std::string data = RandomBytes(24u << 20, 5);
  Serve("twice", data);
  Serve("other", "other");
  const std::string line = "twice\t\t" + Hex(data);
  RunResult r = GetWith(Manifest({line, "other", line, line}),
                        TestCollection().token_rw_file, {"--streams", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("line 3 repeats line 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 4 repeats line 1"), std::string::npos) << r.err;
  ExpectSameTree();
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 4u);
  int ok = 0, skipped = 0;
  for (const Json& line : report) {
    if (line["status"] == "ok") ++ok;
    if (line["status"] == "skipped") {
      ++skipped;
      EXPECT_EQ(line["reason"], "duplicate of line 1");
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(skipped, 2);
  int gets = 0;
  for (const Request& q : Requests()) {
    if (q.method == "GET" && q.target.find("twice") != std::string::npos) {
      ++gets;
    }
  }
  EXPECT_EQ(gets, 1);
}

TEST_F(Get, OneFileWithOtherPromisesIsNoRepeat) {
  const std::string data = RandomBytes(1000, 9);
  Serve("f", data);
  // The second line promises another size: it is checked on its own, and
  // fails, whatever the first line did.
  RunResult r =
      GetWith(Manifest({"f\t1000", "f\t999"}), TestCollection().token_rw_file);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("names the same destination"), std::string::npos)
      << r.err;
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0]["status"], "ok");
  EXPECT_EQ(report[1]["status"], "failed");
  ExpectSameTree();
}

TEST_F(Get, TwoSourcesForOneDestinationNeverWriteItAtOnce) {
  const std::string a = RandomBytes(24u << 20, 6);
  Serve("a", a);
  Serve("b", "the later entry wins");
  RunResult r =
      GetWith(Manifest({"a same", "b same"}), TestCollection().token_rw_file,
              {"--streams", "4", "--format", "globus-batch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("line 2 names the same destination"), std::string::npos)
      << r.err;
  EXPECT_EQ(ListTree(dest_), std::vector<std::string>{"same"});
  EXPECT_EQ(ReadFile(dest_ / "same"), "the later entry wins");
}

TEST_F(Get, NamesOfFerrysOwnFilesAreNeverWritten) {
  Serve("real", "real data");
  Serve(".real.ferry-part", "someone's leftover");
  Serve(".ferry-journal", "not a journal");
  RunResult r =
      GetWith(Manifest({"real", ".real.ferry-part", ".ferry-journal"}),
              TestCollection().token_rw_file);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("keeps for itself"), std::string::npos) << r.err;
  EXPECT_EQ(ListTree(dest_), std::vector<std::string>{"real"});
  EXPECT_EQ(ReadFile(dest_ / "real"), "real data");
}

TEST_F(Get, MaxRequestsIsACeilingInEverySecond) {
  std::vector<std::string> lines;
  for (int i = 0; i < 500; ++i) {
    lines.push_back("r" + std::to_string(i));
    Serve(lines.back(), std::to_string(i));
  }
  auto start = std::chrono::steady_clock::now();
  RunResult r = GetWith(Manifest(lines), TestCollection().token_rw_file,
                        {"--max-requests", "200", "--streams", "32"});
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_NE(r.err.find("held back"), std::string::npos) << r.err;
  // 501 requests (the OPTIONS probe too) at 200 a second: two seconds and
  // a half at least.
  EXPECT_GE(seconds, 2.4);
  // The collection's log is the witness: when each request reached nginx
  // (when it ended less how long it took), and how many began in the
  // second that followed. Its clock counts milliseconds, so the window is
  // shortened by two of them.
  std::vector<double> starts;
  for (const Request& q : Requests()) starts.push_back(q.ended - q.seconds);
  ASSERT_EQ(starts.size(), 501u);
  std::sort(starts.begin(), starts.end());
  size_t most = 0;
  for (size_t i = 0, j = 0; i < starts.size(); ++i) {
    while (j < starts.size() && starts[j] < starts[i] + 0.998) ++j;
    most = std::max(most, j - i);
  }
  EXPECT_LE(most, 200u);
  EXPECT_GE(most, 150u);  // not a run that never came near the limit
}

TEST_F(Get, NamesAsLongAsTheFileSystemAllows) {
  std::string name(250, 'L');
  Serve(name, "long name");
  RunResult r = GetWith(Manifest({name}), TestCollection().token_rw_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
}

TEST_F(Get, UsageErrorsExitTwoAndTouchNothing) {
  Serve("a", "a");
  const std::string manifest = Manifest({"a"});
  const std::string url = TestCollection().url + "/" + name_;
  const std::string host = TestCollection().url.substr(8);  // after https://
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--from", "http://" + host + "/" + name_}, {}, "https://"},
      {{"--from", "https://"}, {}, "base URL"},
      {{"--from", "https://127.0.0.1:99999"}, {}, "base URL"},
      {{"--from", url + "?x=1"}, {}, "query"},
      {{"--from", url + "/with space"}, {}, "base URL"},
      {{"--from", url}, {{"FERRY_TOKEN", "tok\r\nX-Evil: 1"}}, "token"},
      {{"--from", url, "--ca-file", (work_ / "no-such-ca").string()},
       {},
       "CA file"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"get", manifest, "--to", dest_.string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    if (std::find(args.begin(), args.end(), "--ca-file") == args.end()) {
      args.push_back("--ca-file");
      args.push_back(TestCollection().ca_file);
    }
    RunResult r = RunFerry(args, c.env);
    EXPECT_EQ(r.exit_code, 2) << c.args[1] << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_TRUE(ListTree(dest_).empty());
}

TEST_F(Get, ManifestMustBeAReadableRegularFile) {
  fs::path fifo = work_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const fs::path& manifest : {fifo, work_ / "missing", work_}) {
    std::vector<std::string> args = GetArgs(manifest.string());
    RunResult r = RunFerry(args);
    EXPECT_EQ(r.exit_code, 2) << manifest << "\n" << r.err;
    EXPECT_NE(r.err.find("manifest"), std::string::npos) << r.err;
  }
}

TEST_F(Get, ReportNeverOverwritesTheManifest) {
  Serve("a", "a");
  std::string manifest = Manifest({"a"});
  std::vector<std::string> args = GetArgs(manifest);
  *(std::find(args.begin(), args.end(), "--report") + 1) = manifest;
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("the report file is the manifest"), std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFile(manifest), "a\n");
}

TEST_F(Get, ReportThatCannotBeWrittenFailsTheRun) {
  Serve("a", "a");
  std::vector<std::string> args = GetArgs(Manifest({"a"}));
  args.push_back("--token-file");
  args.push_back(TestCollection().token_rw_file);
  *(std::find(args.begin(), args.end(), "--report") + 1) = "/dev/full";
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write report"), std::string::npos) << r.err;
}

TEST_F(Get, InterruptLeavesPartialFilesThatTheSameCommandContinues) {
  for (int i = 0; i < 3; ++i) {
    Serve("big" + std::to_string(i), RandomBytes(96u << 20, 20 + i));
  }
  std::vector<std::string> args = GetArgs(Manifest({"big0", "big1", "big2"}));
  args.push_back("--token-file");
  args.push_back(TestCollection().token_rw_file);
  // Interrupt once some megabytes have been written.
  auto writing = [this] {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dest_, ec)) {
      if (e.path().filename().string().find(".ferry-part") !=
              std::string::npos &&
          fs::file_size(e.path(), ec) > (8u << 20)) {
        return true;
      }
    }
    return false;
  };
  RunResult r = RunFerryAndSignal(args, writing, SIGINT);
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << r.err;
  EXPECT_NE(r.err.find("stopped early: interrupted"), std::string::npos)
      << r.err;
  // Nothing half-written under a final name; partial files stay hidden,
  // with the journal that says how far they got.
  size_t partial = 0;
  for (const std::string& name : ListTree(dest_)) {
    if (name.find(".ferry-part") != std::string::npos) {
      ++partial;
      continue;
    }
    EXPECT_TRUE(ReadFile(dest_ / name) == ReadFile(src_ / name)) << name;
  }
  EXPECT_GE(partial, 1u);
  const fs::path journal = dest_.parent_path() /
                           ("." + dest_.filename().string() + ".ferry-journal");
  EXPECT_TRUE(fs::exists(journal));
  std::vector<Json> report = Report();
  EXPECT_FALSE(report.empty());
  for (const Json& line : report) {
    if (line["status"] == "failed") {
      EXPECT_EQ(line["error"], "interrupted");
    }
  }

  // The same command again, its folder spelled another way: the partial
  // files go on from their bytes.
  *(std::find(args.begin(), args.end(), "--to") + 1) =
      (dest_ / "." / "").string();
  r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_FALSE(fs::exists(journal));
  size_t ranged = 0;
  for (const Request& q : Requests()) {
    if (q.method == "GET" && !q.range.empty()) {
      EXPECT_EQ(q.status, 206) << q.target << " " << q.range;
      ++ranged;
    }
  }
  EXPECT_EQ(ranged, partial);
}

}  // namespace
}  // namespace ferry::testing
