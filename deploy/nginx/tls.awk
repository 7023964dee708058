# https with a certificate of one's own in a flaskr site (deploy/nginx/flaskr.conf as
# install-host writes it): the app's server moves to port 443 (as certbot --nginx moves it) and
# port 80 answers its names with a redirect to https. Used by scripts/install-host --tls-cert:
#   awk -v dir=/etc/flaskr/tls -v names="NAME ..." -v ocsp=0|1 -f tls.awk SITE
# dir holds flaskr.crt and flaskr.key; ocsp=1 staples (for a certificate naming a responder).
$0 == "    listen 80;" { print "    listen 443 ssl;"; next }
$0 == "    listen [::]:80;" {
    print "    listen [::]:443 ssl;"
    print "    ssl_certificate " dir "/flaskr.crt;"
    print "    ssl_certificate_key " dir "/flaskr.key;"
    print "    include snippets/flaskr-tls.conf;"
    if (ocsp) {
        print "    ssl_stapling on;"
        print "    ssl_stapling_verify on;"
    }
    moved++
    next
}
{ print }
END {
    if (moved != 1) exit 1
    print ""
    print "# http: every request for the names above goes to https (install-host --tls-cert)."
    print "server {"
    print "    listen 80;"
    print "    listen [::]:80;"
    print "    server_name " names ";"
    print "    return 301 https://$host$request_uri;"
    print "}"
}
