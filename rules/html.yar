/*
  mailguard starter rules: HTML smuggling (a payload assembled in the
  browser from data inside the HTML, so no file crosses the mail filter).
*/

rule HTML_Smuggling_Blob_Download
{
    meta:
        description = "HTML/JS that decodes embedded data into a Blob and saves or opens it as a download"
        severity = "high"
        reference = "https://attack.mitre.org/techniques/T1027/006/"
        author = "mailguard"

    strings:
        $blob     = /new\s+Blob\s*\(/ nocase

        $url      = "createObjectURL" nocase
        $save1    = "msSaveOrOpenBlob" nocase
        $save2    = "msSaveBlob" nocase

        // The payload is decoded in the page.
        $dec1     = /\batob\s*\(/ nocase
        $dec2     = "fromCharCode" nocase
        $dec3     = "Uint8Array" nocase
        $dec4     = "charCodeAt" nocase

        // ... and handed to the user as a file.
        $dl1      = /\.download\s*=/ nocase
        $dl2      = /\.click\s*\(\s*\)/ nocase
        $dl3      = /setAttribute\s*\(\s*["']download["']/ nocase

    condition:
        filesize < 50MB and $blob and
        ($url or $save1 or $save2) and
        any of ($dec*) and
        (any of ($dl*) or $save1 or $save2)
}
