/*
  mailguard starter rules: the EICAR anti-malware test file.

  Meta keys read by mailguard (see the scan package documentation):
    description, severity (low|medium|high|critical), reference, and
    optionally action (tag|hold|quarantine|reject).
*/

rule EICAR_Test_File
{
    meta:
        description = "EICAR anti-malware test file: harmless, used to check that scanning works end to end"
        severity = "high"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
        author = "mailguard"

    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

    condition:
        // The test file is the 68-byte string at the start of the file, optionally
        // followed by whitespace, 128 bytes at most (EICAR's own definition).
        $eicar at 0 and filesize <= 128 and
        (filesize == 68 or
         for all i in (68 .. filesize - 1) :
            (uint8(i) == 0x20 or uint8(i) == 0x09 or uint8(i) == 0x0a or
             uint8(i) == 0x0d or uint8(i) == 0x1a))
}
