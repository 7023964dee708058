# Turn the micro-cache on in a flaskr site (deploy/nginx/flaskr.conf as install-host writes
# it): the store before the upstream, the rules in the app's server, after its server_name.
# Used by scripts/install-host --micro-cache, and by the tests that render the same site.
$0 == "upstream flaskr {" {
    print "# The micro-cache for visitors' pages (install-host --micro-cache)."
    print "include snippets/flaskr-micro-cache-zone.conf;"
    print ""
    zone++
}
{ print }
/^[ \t]*server_name .*;[ \t]*# FLASKR_SERVER_NAME$/ {
    print "    include snippets/flaskr-micro-cache.conf;"
    rules++
}
END { if (zone != 1 || rules != 1) exit 1 }
