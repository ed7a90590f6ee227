// Runs that do not end well: killed at a random moment, or out of disk
// space. What is left must never be a wrong file under a final name, and
// the same command run again must finish the job.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>

#include <algorithm>
#include <random>

#include "integration/harness.h"

namespace ferry::testing {
namespace {

using Json = nlohmann::json;

class Resume : public CollectionTest {
 protected:
  std::vector<std::string> Args(const std::string& manifest) const {
    std::vector<std::string> args = GetArgs(manifest);
    args.push_back("--token-file");
    args.push_back(TestCollection().token_rw_file);
    return args;
  }
  // The same through a proxy that slows the large files down, so that a
  // kill finds them in flight on any machine.
  std::vector<std::string> SlowArgs(const ChaosProxy& proxy,
                                    const std::string& manifest) const {
    std::vector<std::string> args = Args(manifest);
    *(std::find(args.begin(), args.end(), "--from") + 1) =
        proxy.url() + "/" + name_;
    return args;
  }
  nlohmann::json TrickleLarge(int bytes_per_second) const {
    return nlohmann::json::array({{{"path", "/" + name_ + "/large"},
                                   {"fault", "trickle"},
                                   {"rate", bytes_per_second},
                                   {"times", -1}}});
  }
  fs::path Journal() const {
    return dest_.parent_path() /
           ("." + dest_.filename().string() + ".ferry-journal");
  }
  // Every file under a final name is its source's bytes.
  void ExpectNoWrongFile() const {
    for (const std::string& name : ListTree(dest_)) {
      if (name.find(".ferry-part") != std::string::npos) continue;
      if (fs::is_directory(dest_ / name)) continue;
      EXPECT_TRUE(ReadFile(dest_ / name) == ReadFile(src_ / name)) << name;
    }
  }
};

TEST_F(Resume, KilledAtRandomMomentsTheSameCommandGivesTheSameTree) {
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) {
    std::string name = "small/" + std::to_string(i);
    Serve(name, RandomBytes(1000 + i * 97, i));
    lines.push_back(name);
  }
  for (int i = 0; i < 3; ++i) {
    std::string name = "large/" + std::to_string(i);
    Serve(name, RandomBytes(24u << 20, 1000 + i));
    lines.push_back(name);
  }
  ChaosProxy proxy(TrickleLarge(12 << 20));
  ASSERT_FALSE(proxy.url().empty());
  const std::vector<std::string> args = SlowArgs(proxy, Manifest(lines));
  // Kill moments drawn from a fixed seed, from just after the start to
  // well into the large files.
  std::mt19937 random(20261203);
  std::uniform_int_distribution<int> bytes_before_kill(0, 60 << 20);
  int kills = 0;
  for (int round = 0; round < 3; ++round) {
    const uintmax_t threshold =
        static_cast<uintmax_t>(bytes_before_kill(random));
    auto far_enough = [this, threshold] {
      uintmax_t total = 0;
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(dest_, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec)) total += it->file_size(ec);
      }
      return total >= threshold;
    };
    RunResult killed = RunFerryAndSignal(args, far_enough, SIGKILL);
    if (killed.exit_code == 0) break;  // it finished first
    EXPECT_EQ(killed.exit_code, 128 + SIGKILL) << killed.err;
    ++kills;
    ExpectNoWrongFile();
  }
  EXPECT_GE(kills, 2);
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  EXPECT_FALSE(fs::exists(Journal()));
}

TEST_F(Resume, FinishedFilesAreNotFetchedAgainAfterAKill) {
  std::vector<std::string> lines;
  for (int i = 0; i < 50; ++i) {
    std::string name = "f" + std::to_string(i);
    Serve(name, RandomBytes(4096, i));
    lines.push_back(name);
  }
  Serve("large", RandomBytes(48u << 20, 77));
  lines.push_back("large");
  ChaosProxy proxy(TrickleLarge(8 << 20));
  ASSERT_FALSE(proxy.url().empty());
  const std::vector<std::string> args = SlowArgs(proxy, Manifest(lines));
  // Killed once the journal notes every small file as finished and the
  // large one as partial.
  auto noted = [this] {
    std::string journal = ReadFile(Journal());
    size_t done = 0;
    for (size_t at = journal.find("\"k\":\"done\""); at != std::string::npos;
         at = journal.find("\"k\":\"done\"", at + 1)) {
      ++done;
    }
    return done >= 50 && journal.find("\"k\":\"part\"") != std::string::npos;
  };
  RunResult killed = RunFerryAndSignal(args, noted, SIGKILL);
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.err;
  const size_t before = Requests().size();
  RunResult r = RunFerry(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  std::vector<Request> requests = Requests();
  size_t small_again = 0, large_ranged = 0;
  for (size_t i = before; i < requests.size(); ++i) {
    const Request& q = requests[i];
    if (q.method != "GET") continue;
    if (q.target.find("/large") != std::string::npos) {
      if (!q.range.empty()) ++large_ranged;
    } else {
      ++small_again;
    }
  }
  EXPECT_EQ(small_again, 0u);
  EXPECT_EQ(large_ranged, 1u);
}

TEST_F(Resume, AFullDiskStopsTheRunAndLeavesNoWrongFile) {
  // A small file system of its own, so that the test fills nothing else.
  fs::create_directories(dest_);
  if (::mount("ferry-test", dest_.c_str(), "tmpfs", 0, "size=8m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  }
  struct Unmount {
    fs::path dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{dest_};
  std::vector<std::string> lines;
  for (int i = 0; i < 6; ++i) {
    std::string name = "f" + std::to_string(i);
    Serve(name, RandomBytes(3u << 20, 300 + i));
    lines.push_back(name);
  }
  std::vector<std::string> args = Args(Manifest(lines));
  args.push_back("--streams");
  args.push_back("2");
  RunResult r = RunFerry(args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stopped early"), std::string::npos) << r.err;
  ExpectNoWrongFile();
  size_t arrived = 0;
  for (const Json& line : ReadReport(work_ / "report.jsonl")) {
    if (line["status"] == "ok") ++arrived;
  }
  EXPECT_GE(arrived, 1u);
  EXPECT_LT(arrived, 6u);
}

}  // namespace
}  // namespace ferry::testing
