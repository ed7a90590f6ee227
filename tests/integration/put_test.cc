// put, rm, stat, link, sync levels and batch files against the real local
// collection. The collection serves a local folder, so what an upload or a
// delete did is checked on that folder directly.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "ferry/digest.h"
#include "integration/harness.h"

namespace ferry::testing {
namespace {

using Json = nlohmann::json;

std::string Hex(const std::string& data) {
  return HashBuffer(data.data(), data.size()).ToHex();
}

// Sets a file's modification time `seconds` from now.
void SetMtimeFromNow(const fs::path& path, int seconds) {
  fs::last_write_time(
      path, fs::file_time_type::clock::now() + std::chrono::seconds(seconds));
}

class Transfer : public CollectionTest {
 protected:
  void SetUp() override {
    CollectionTest::SetUp();
    local_ = work_ / "local";
    fs::create_directories(local_);
  }

  std::string Url(const std::string& sub = "") const {
    std::string url = TestCollection().url + "/" + name_;
    return sub.empty() ? url : url + "/" + sub;
  }
  // The same folder, through the collection's prefix that sends
  // Last-Modified.
  std::string DatedUrl(const std::string& sub) const {
    return TestCollection().url + "/_dated/" + name_ + "/" + sub;
  }

  // Runs a command with this test's CA, report and a token.
  RunResult Ferry(std::vector<std::string> args,
                  const std::string& token_file = "") {
    args.insert(args.end(), {"--ca-file", TestCollection().ca_file, "--report",
                             (work_ / "report.jsonl").string(), "--token-file",
                             token_file.empty() ? TestCollection().token_rw_file
                                                : token_file});
    return RunFerry(args);
  }
  RunResult Put(const std::string& manifest, const std::string& url,
                std::vector<std::string> extra = {},
                const std::string& token_file = "") {
    std::vector<std::string> args = {"put",           manifest, "--from",
                                     local_.string(), "--to",   url};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ferry(args, token_file);
  }
  RunResult Get(const std::string& manifest, const std::string& url,
                const fs::path& to, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"get", manifest, "--from",
                                     url,   "--to",   to.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ferry(args);
  }

  std::vector<Json> Report() { return ReadReport(work_ / "report.jsonl"); }
  // path -> status ("ok", "skipped", ...) from the last run's report.
  std::map<std::string, std::string> Statuses() {
    std::map<std::string, std::string> statuses;
    for (const Json& line : Report()) statuses[line["path"]] = line["status"];
    return statuses;
  }
  // The paths the last run moved (status ok).
  std::set<std::string> Moved() {
    std::set<std::string> moved;
    for (const auto& [path, status] : Statuses()) {
      if (status == "ok") moved.insert(path);
    }
    return moved;
  }

  // A manifest of `dir` made by `ferry manifest`.
  std::string TreeManifest(const fs::path& dir, const std::string& name) {
    fs::path out = work_ / name;
    RunResult r = RunFerry({"manifest", dir.string(), "-o", out.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out.string();
  }

  fs::path local_;  // this test's local tree
};

TEST_F(Transfer, RoundTripThroughTheCollectionKeepsEveryByte) {
  std::map<std::string, std::string> files = {
      {"empty", ""},
      {"one", "1"},
      {"three-mib.bin", RandomBytes(3u << 20, 7)},
      {"dir/sub dir/with space.txt", "spaces"},
      {"dir/ünïcödé.txt", "utf-8"},
      {"dir/#hash%20and?query.txt", "odd"},
      {"deep/a/b/c/d/e/f/g/h/leaf", RandomBytes(300000, 8)},
  };
  for (const auto& [rel, data] : files) WriteFile(local_ / rel, data);
  std::string manifest = TreeManifest(local_, "tree.tsv");

  RunResult put = Put(manifest, Url("up"));
  ASSERT_EQ(put.exit_code, 0) << put.err;
  std::map<std::string, std::string> sent;
  for (const Json& line : Report()) {
    EXPECT_EQ(line["status"], "ok") << line;
    EXPECT_EQ(line["op"], "put");
    sent[line["path"]] = line["xxh128"];
  }
  ASSERT_EQ(sent.size(), files.size());
  for (const auto& [rel, data] : files) {
    EXPECT_EQ(ReadFile(src_ / "up" / rel), data) << rel;
    EXPECT_EQ(sent[rel], Hex(data)) << rel;
  }
  EXPECT_NE(put.err.find("7 uploaded (7 verified"), std::string::npos)
      << put.err;

  RunResult get = Get(manifest, Url("up"), dest_);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  for (const Json& line : Report()) {
    EXPECT_EQ(line["xxh128"], sent[line["path"]]) << line;
  }
  RunResult verify = RunFerry({"verify", manifest, "--in", dest_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(ListTree(dest_), ListTree(local_));
}

TEST_F(Transfer, LargeUploadsArriveWholeOverBothProtocols) {
  // Larger than the reader's read-ahead many times over, so the network
  // waits for the disk now and then and the upload pauses and resumes.
  const std::string big = RandomBytes(320u << 20, 11);
  WriteFile(local_ / "big.bin", big);
  const std::string mid = RandomBytes(5u << 20, 12);
  WriteFile(local_ / "mid.bin", mid);
  std::string manifest =
      Manifest({"big.bin\t" + std::to_string(big.size()) + "\t" + Hex(big),
                "mid.bin\t\t" + Hex(mid)});
  RunResult h2 = Put(manifest, Url("h2"));
  ASSERT_EQ(h2.exit_code, 0) << h2.err;
  RunResult h1 = Put(manifest, Url("h1"), {"--http1.1"});
  ASSERT_EQ(h1.exit_code, 0) << h1.err;
  for (const char* sub : {"h1", "h2"}) {
    EXPECT_TRUE(ReadFile(src_ / sub / "big.bin") == big) << sub;
    EXPECT_TRUE(ReadFile(src_ / sub / "mid.bin") == mid) << sub;
  }
  for (const Json& line : Report()) EXPECT_EQ(line["status"], "ok") << line;
  std::set<std::string> protocols;
  for (const Request& q : Requests()) {
    if (q.method == "PUT") protocols.insert(q.protocol);
  }
  EXPECT_EQ(protocols, (std::set<std::string>{"HTTP/1.1", "HTTP/2.0"}));
}

TEST_F(Transfer, RecursiveBatchLineUploadsTheLocalFolder) {
  WriteFile(local_ / "data/a.txt", "a");
  WriteFile(local_ / "data/sub/b.txt", "bb");
  WriteFile(local_ / "single.txt", "single");
  fs::create_symlink(local_ / "single.txt", local_ / "data/link.txt");
  std::string batch = Manifest({
      "--recursive data remote/data",
      "single.txt 'remote/one file.txt'",
  });
  RunResult r = Put(batch, Url());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(src_ / "remote/data/a.txt"), "a");
  EXPECT_EQ(ReadFile(src_ / "remote/data/sub/b.txt"), "bb");
  EXPECT_EQ(ReadFile(src_ / "remote/one file.txt"), "single");
  EXPECT_FALSE(fs::exists(src_ / "remote/data/link.txt"))
      << "links are not followed";
  EXPECT_NE(r.err.find("3 files: 3 uploaded"), std::string::npos) << r.err;
}

TEST_F(Transfer, ReadOnlyTokenCannotUploadAndHarmsNothing) {
  Serve("keep.txt", "old");
  WriteFile(local_ / "keep.txt", "new contents");
  WriteFile(local_ / "new.txt", "fresh");
  RunResult r = Put(Manifest({"keep.txt", "new.txt"}), Url(), {},
                    TestCollection().token_ro_file);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 2u);
  for (const Json& line : report) {
    EXPECT_EQ(line["status"], "failed");
    EXPECT_EQ(line["http_status"], 403);
    EXPECT_EQ(line["attempts"], 1) << "403 is not worth retrying";
  }
  EXPECT_EQ(ReadFile(src_ / "keep.txt"), "old");
  EXPECT_EQ(ListTree(src_), std::vector<std::string>{"keep.txt"});
  EXPECT_EQ(ReadFile(local_ / "keep.txt"), "new contents");
}

TEST_F(Transfer, CollectionThatRefusesTheMethodStopsBeforeAnyRequest) {
  Serve("a.txt", "a");
  WriteFile(local_ / "a.txt", "new");
  std::string manifest = Manifest({"a.txt"});
  std::string url = TestCollection().url + "/_getonly/" + name_;
  RunResult put = Put(manifest, url);
  EXPECT_EQ(put.exit_code, 2);
  EXPECT_NE(put.err.find("does not allow PUT"), std::string::npos) << put.err;
  RunResult rm = Ferry({"rm", manifest, "--at", url});
  EXPECT_EQ(rm.exit_code, 2);
  EXPECT_NE(rm.err.find("does not allow DELETE"), std::string::npos) << rm.err;
  // Only the two probes reached the collection; the file is untouched.
  std::vector<Request> requests = Requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const Request& request : requests) {
    EXPECT_EQ(request.method, "OPTIONS") << request.target;
  }
  EXPECT_EQ(ReadFile(src_ / "a.txt"), "a");
}

TEST_F(Transfer, MissingSourceFailsAloneAndOthersUpload) {
  WriteFile(local_ / "here.txt", "here");
  RunResult r = Put(Manifest({"gone.txt", "here.txt"}), Url());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Statuses(), (std::map<std::string, std::string>{
                            {"gone.txt", "failed"}, {"here.txt", "ok"}}));
  EXPECT_NE(r.err.find("gone.txt"), std::string::npos) << r.err;
  EXPECT_EQ(ListTree(src_), std::vector<std::string>{"here.txt"});
}

TEST_F(Transfer, RemoveThenStatSaysAbsent) {
  Serve("a.txt", "aaa");
  Serve("dir/b.bin", "bb");
  Serve("kept.txt", "kept");
  RunResult rm = Ferry(
      {"rm", Manifest({"a.txt", "dir/b.bin", "never.txt"}), "--at", Url()});
  EXPECT_EQ(rm.exit_code, 0) << "an absent file is not a failure: " << rm.err;
  EXPECT_EQ(
      Statuses(),
      (std::map<std::string, std::string>{
          {"a.txt", "ok"}, {"dir/b.bin", "ok"}, {"never.txt", "absent"}}));
  EXPECT_FALSE(fs::exists(src_ / "a.txt"));
  EXPECT_FALSE(fs::exists(src_ / "dir/b.bin"));

  RunResult stat = Ferry(
      {"stat", Manifest({"a.txt", "dir/b.bin", "kept.txt"}), "--at", Url()});
  EXPECT_EQ(stat.exit_code, 1) << "missing files fail a stat";
  std::set<std::string> lines;
  std::istringstream out(stat.out);
  for (std::string line; std::getline(out, line);) lines.insert(line);
  EXPECT_EQ(lines,
            (std::set<std::string>{"a.txt\t-\tabsent", "dir/b.bin\t-\tabsent",
                                   "kept.txt\t4\ttext/plain"}))
      << stat.out;

  RunResult strict =
      Ferry({"rm", Manifest({"a.txt"}), "--at", Url(), "--strict"});
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_EQ(Statuses(),
            (std::map<std::string, std::string>{{"a.txt", "failed"}}));
}

TEST_F(Transfer, LinkIsEncodedAndDownloadsAsAttachment) {
  RunResult r =
      RunFerry({"link", "dir/a b#1.txt", "--at", "https://h.example/c/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "https://h.example/c/dir/a%20b%231.txt?download\n");
  EXPECT_EQ(RunFerry({"link", "../x", "--at", "https://h.example"}).exit_code,
            2);
}

// The same five files at every level: f1 touched, f2 grown, f3 rewritten
// with the same size, f4 left alone, f5 missing at the destination.
class Sync : public Transfer {
 protected:
  static constexpr const char* kNames[] = {"f1", "f2", "f3", "f4", "f5"};
  void WriteOriginals(const fs::path& dir) {
    for (const char* name : kNames) {
      WriteFile(dir / name, std::string("original ") + name);
    }
  }
  void Change(const fs::path& dir) {
    SetMtimeFromNow(dir / "f1", 3600);
    WriteFile(dir / "f2", "original f2 and more");
    SetMtimeFromNow(dir / "f2", 3600);
    WriteFile(dir / "f3", "altered! f3");  // the same size
    SetMtimeFromNow(dir / "f3", 3600);
  }
};

TEST_F(Sync, GetMovesExactlyWhatEachLevelSeesChanged) {
  WriteOriginals(src_);
  std::string plain = Manifest({"f1", "f2", "f3", "f4", "f5"});
  std::map<std::string, fs::path> dests;
  for (const char* level : {"exists", "size", "mtime", "checksum"}) {
    dests[level] = dest_ / level;
    ASSERT_EQ(Get(plain, Url(), dests[level]).exit_code, 0);
    fs::remove(dests[level] / "f5");
  }
  Change(src_);
  std::string with_sums = TreeManifest(src_, "after.tsv");

  const std::map<std::string, std::set<std::string>> expected = {
      {"exists", {"f5"}},
      {"size", {"f2", "f5"}},
      {"mtime", {"f1", "f2", "f3", "f5"}},
      {"checksum", {"f2", "f3", "f5"}},
  };
  for (const auto& [level, moved] : expected) {
    std::string url = level == "mtime" ? DatedUrl("") : Url();
    std::string manifest = level == "checksum" ? with_sums : plain;
    RunResult r = Get(manifest, url, dests[level], {"--sync", level});
    ASSERT_EQ(r.exit_code, 0) << level << ": " << r.err;
    EXPECT_EQ(Moved(), moved) << level;
    for (const Json& line : Report()) {
      if (line["status"] == "skipped") {
        EXPECT_TRUE(line.contains("reason")) << line;
      }
    }
    for (const char* name : kNames) {
      EXPECT_EQ(ReadFile(dests[level] / name),
                moved.count(name) ? ReadFile(src_ / name)
                                  : std::string("original ") + name)
          << level << " " << name;
    }
  }
}

TEST_F(Sync, PutMovesExactlyWhatEachLevelSeesChanged) {
  WriteOriginals(local_);
  std::string plain = Manifest({"f1", "f2", "f3", "f4", "f5"});
  for (const char* level : {"exists", "size", "mtime", "checksum"}) {
    ASSERT_EQ(Put(plain, Url(level)).exit_code, 0);
    fs::remove(src_ / level / "f5");
  }
  // The uploads are newer than the originals; make the changes newer still.
  Change(local_);
  std::string with_sums = TreeManifest(local_, "after.tsv");

  const std::map<std::string, std::set<std::string>> expected = {
      {"exists", {"f5"}},
      {"size", {"f2", "f5"}},
      {"mtime", {"f1", "f2", "f3", "f5"}},
      {"checksum", {"f2", "f3", "f5"}},
  };
  for (const auto& [level, moved] : expected) {
    std::string url = level == "mtime" ? DatedUrl(level) : Url(level);
    std::string manifest = level == "checksum" ? with_sums : plain;
    RunResult r = Put(manifest, url, {"--sync", level});
    ASSERT_EQ(r.exit_code, 0) << level << ": " << r.err;
    EXPECT_EQ(Moved(), moved) << level;
    if (level == "checksum") {
      // f2, f3 and f5 went up (42 bytes); f1, f3 and f4, as large as the
      // manifest says, were read back and hashed first (33 bytes).
      EXPECT_NE(r.err.find("42 B in "), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("(75 B over the network)"), std::string::npos)
          << r.err;
    }
    for (const char* name : kNames) {
      EXPECT_EQ(ReadFile(src_ / level / name),
                moved.count(name) ? ReadFile(local_ / name)
                                  : std::string("original ") + name)
          << level << " " << name;
    }
  }
}

TEST_F(Sync, MtimeWithoutModificationTimesCopiesAndSaysWhy) {
  WriteOriginals(local_);
  std::string plain = Manifest({"f1", "f2"});
  ASSERT_EQ(Put(plain, Url()).exit_code, 0);
  RunResult r = Put(plain, Url(), {"--sync", "mtime"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Moved(), (std::set<std::string>{"f1", "f2"}));
  EXPECT_NE(r.err.find("no modification times"), std::string::npos) << r.err;
}

TEST_F(Sync, ChecksumNeedsTheManifestsColumn) {
  WriteOriginals(local_);
  RunResult r = Put(Manifest({"f1", "f2"}), Url(), {"--sync", "checksum"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(":1: --sync checksum"), std::string::npos) << r.err;
  EXPECT_TRUE(ListTree(src_).empty());
}

TEST_F(Transfer, FileChangingDuringUploadIsNotSent) {
  Serve("growing.bin", "old version");
  const std::string data = RandomBytes(256u << 20, 3);
  WriteFile(local_ / "growing.bin", data);
  WriteFile(local_ / "steady.txt", "steady");

  // Keeps rewriting the first byte, which moves the file's mtime, until
  // the upload is over.
  std::atomic<bool> done{false};
  std::thread writer([&] {
    int fd = ::open((local_ / "growing.bin").c_str(), O_WRONLY);
    char byte = 0;
    while (!done.load()) {
      EXPECT_EQ(::pwrite(fd, &byte, 1, 0), 1);
      ++byte;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::close(fd);
  });
  RunResult r =
      Put(Manifest({"growing.bin", "steady.txt"}), Url(), {"--attempts", "1"});
  done.store(true);
  writer.join();

  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(Statuses(), (std::map<std::string, std::string>{
                            {"growing.bin", "failed"}, {"steady.txt", "ok"}}));
  EXPECT_NE(r.err.find("changed while it was being read"), std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFile(src_ / "growing.bin"), "old version");
  EXPECT_EQ(ReadFile(src_ / "steady.txt"), "steady");
}

TEST_F(Transfer, BatchFileWithQuotingPrefixesAndAbsolutePaths) {
  Serve("dir with space/a b.txt", "ab");
  Serve("plain.txt", "plain");
  Serve("esc aped.txt", "escaped");
  Serve("hash#name.txt", "hash");
  Serve("abs.txt", "absolute");
  fs::path absolute_dest = dest_ / "elsewhere" / "abs-copy.txt";
  std::string batch = Manifest({
      "# a Globus batch file",
      "\"dir with space/a b.txt\" out/ab.txt  # trailing comment",
      "plain.txt 'quoted dest.txt'",
      "esc\\ aped.txt dest2.txt",
      "'hash#name.txt' hash.txt",
      "/" + name_ + "/abs.txt " + absolute_dest.string(),
      "",
  });
  RunResult r = Get(batch, Url(), dest_ / "in");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Globus batch file"), std::string::npos)
      << "the detected format is announced: " << r.err;
  EXPECT_EQ(ReadFile(dest_ / "in/out/ab.txt"), "ab");
  EXPECT_EQ(ReadFile(dest_ / "in/quoted dest.txt"), "plain");
  EXPECT_EQ(ReadFile(dest_ / "in/dest2.txt"), "escaped");
  EXPECT_EQ(ReadFile(dest_ / "in/hash.txt"), "hash");
  EXPECT_EQ(ReadFile(absolute_dest), "absolute");
}

TEST_F(Transfer, BatchFileBadLinesAreNamedAndNothingMoves) {
  Serve("a.txt", "a");
  std::string batch = Manifest({
      "a.txt b.txt",
      "a.txt b.txt c.txt",
      "'unterminated b.txt",
      "a.txt --bogus b.txt",
  });
  RunResult r = Get(batch, Url(), dest_, {"--format", "globus-batch"});
  EXPECT_EQ(r.exit_code, 2);
  for (const char* line : {":2:", ":3:", ":4:"}) {
    EXPECT_NE(r.err.find(line), std::string::npos) << line << r.err;
  }
  EXPECT_FALSE(fs::exists(dest_ / "b.txt"));
}

TEST_F(Transfer, RecursiveBatchLineIsRefusedForDownloads) {
  std::string batch = Manifest({"--recursive data data"});
  RunResult r = Get(batch, Url(), dest_, {"--format", "globus-batch"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot list folders"), std::string::npos) << r.err;
}

TEST_F(Transfer, AnInterruptedUploadRunIsFinishedWithoutSendingAgain) {
  std::vector<std::string> lines;
  for (int i = 0; i < 400; ++i) {
    std::string name = "u" + std::to_string(i);
    WriteFile(local_ / name, RandomBytes(20000, 500 + i));
    lines.push_back(name);
  }
  const std::string manifest = Manifest(lines);
  std::vector<std::string> args = {
      "put",          manifest,
      "--from",       local_.string(),
      "--to",         Url(),
      "--streams",    "2",
      "--ca-file",    TestCollection().ca_file,
      "--token-file", TestCollection().token_rw_file};
  const fs::path journal =
      local_.parent_path() /
      ("." + local_.filename().string() + ".ferry-put-journal");
  auto some_arrived = [this] {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator(src_, ec);
         it != fs::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n >= 20;
  };
  RunResult r = RunFerryAndSignal(args, some_arrived, SIGINT);
  ASSERT_EQ(r.exit_code, 128 + SIGINT) << r.err;
  ASSERT_TRUE(fs::exists(journal));
  size_t arrived = 0;
  for (const auto& e : fs::directory_iterator(src_)) {
    (void)e;
    ++arrived;
  }
  const size_t before = Requests().size();
  r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(journal));
  for (const std::string& name : lines) {
    EXPECT_TRUE(ReadFile(src_ / name) == ReadFile(local_ / name)) << name;
  }
  size_t puts = 0;
  std::vector<Request> requests = Requests();
  for (size_t i = before; i < requests.size(); ++i) {
    if (requests[i].method == "PUT") ++puts;
  }
  // Every file that had arrived is skipped; those in flight at the
  // interrupt (at most two) may go again.
  EXPECT_LE(puts, 400 - arrived + 2);
  EXPECT_GE(puts, 400 - arrived);
}

}  // namespace
}  // namespace ferry::testing
