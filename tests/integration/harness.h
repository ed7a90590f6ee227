// Helpers for tests that run the ferry program against the local
// collection started by the CTest fixture (scripts/collection-server).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ferry::testing {

namespace fs = std::filesystem;

// What the fixture's collection-server printed into its state folder.
struct Collection {
  std::string url;
  std::string ca_file;
  fs::path root;  // the folder the collection serves
  std::string token_rw_file;
  std::string token_ro_file;
  fs::path access_log;
  // Its stand-ins for Globus Auth and the Transfer API.
  std::string collection_id;
  std::string https_off_id;  // a collection whose HTTPS is turned off
  std::string auth_url;
  std::string transfer_url;
  std::string client_id;  // an application whose tokens last an hour
  std::string client_secret_file;
  std::string short_client_id;  // one whose tokens last four seconds
  std::string short_client_secret_file;
  std::string instant_client_id;  // one whose tokens last a second
  std::string instant_client_secret_file;
  fs::path auth_log;  // one line per grant asked for
  // Another host (127.0.0.2) that the hook /_elsewhere/ redirects to, and
  // its log, which says whether each request carried a token.
  std::string elsewhere_url;
  fs::path elsewhere_log;
};
const Collection& TestCollection();

struct RunResult {
  int exit_code = -1;
  std::string out;  // standard output
  std::string err;  // standard error
};

// Runs the ferry program with `args` and waits for it. The variables that
// carry credentials (FERRY_TOKEN, FERRY_CLIENT_ID, ...) are removed from
// its environment, and XDG_CACHE_HOME points into the test folder, so that
// no user's token cache is read or written; `env` adds variables.
RunResult RunFerry(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env = {});
// Runs ferry, sends it `signal` as soon as `ready()` holds, and waits.
RunResult RunFerryAndSignal(const std::vector<std::string>& args,
                            const std::function<bool()>& ready, int signal,
                            const std::map<std::string, std::string>& env = {});
// Runs ferry, calls `act` once as soon as `ready()` holds, and waits.
RunResult RunFerryWhile(const std::vector<std::string>& args,
                        const std::function<bool()>& ready,
                        const std::function<void(pid_t)>& act,
                        const std::map<std::string, std::string>& env = {});

// The fault-injecting proxy (tests/chaos/chaos-proxy) in front of the test
// collection, with its own rules; stopped when it goes out of scope.
class ChaosProxy {
 public:
  // `rules`: the proxy's JSON list of rules; `extra`: more arguments
  // (random mode, --listen).
  explicit ChaosProxy(const nlohmann::json& rules,
                      const std::vector<std::string>& extra = {});
  ~ChaosProxy();
  ChaosProxy(const ChaosProxy&) = delete;
  ChaosProxy& operator=(const ChaosProxy&) = delete;

  // The proxy's base URL, standing in for the collection's; empty when it
  // did not start.
  const std::string& url() const { return url_; }
  // Stops it (it writes its counters as it ends) and returns its counters:
  // requests, faults_injected, faults_by_kind, ...
  nlohmann::json Stats();
  // Its log so far: one "TIME METHOD PATH STATUS FAULT" line per request,
  // in the order they ended.
  std::vector<std::string> Log() const;

 private:
  void Stop();

  pid_t pid_ = -1;
  std::string url_;
  fs::path dir_;
};

// Deterministic pseudo-random bytes.
std::string RandomBytes(size_t size, uint64_t seed);
void WriteFile(const fs::path& path, const std::string& data);
std::string ReadFile(const fs::path& path);
// Every entry below `dir` (files, folders, hidden ones too), relative.
std::vector<std::string> ListTree(const fs::path& dir);
std::vector<nlohmann::json> ReadReport(const fs::path& path);
std::string XxhsumOf(const fs::path& path);  // `xxhsum -H2`'s digest

// One request in the collection's access log.
struct Request {
  std::string connection;  // nginx's connection serial number
  std::string method;
  std::string target;
  std::string protocol;  // "HTTP/1.1" or "HTTP/2.0"
  int status = 0;
  std::string range;   // the Range header, if the request had one
  double seconds = 0;  // how long nginx took over it
  double ended = 0;    // when nginx finished it, seconds since the epoch
};

// A test with its own source folder on the collection and its own empty
// destination folder.
class CollectionTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // Writes a file on the collection at `rel` below this test's folder.
  void Serve(const std::string& rel, const std::string& data);
  // A manifest file with these lines; returns its path.
  std::string Manifest(const std::vector<std::string>& lines);
  // `get` arguments for this test's manifest, folder and CA; add a token.
  std::vector<std::string> GetArgs(const std::string& manifest) const;
  // Asserts that every file served below this test's folder arrived
  // byte for byte, and that nothing else is in the destination.
  void ExpectSameTree() const;
  // The requests the collection logged for this test's folder, with or
  // without a test hook's prefix before it.
  std::vector<Request> Requests() const;
  // Asserts that the collection logged `count` requests for this test's
  // folder, all over `protocol`, carried by at most `max_connections`.
  // The OPTIONS probe that starts a run (on a connection of its own) is
  // not counted.
  void ExpectRequestsOver(const std::string& protocol, size_t count,
                          size_t max_connections) const;

  std::string name_;          // this test's folder on the collection
  fs::path src_;              // the collection's copy
  fs::path dest_;             // where ferry writes
  fs::path work_;             // manifests and reports
  uintmax_t log_offset_ = 0;  // access log size when the test began
};

}  // namespace ferry::testing
