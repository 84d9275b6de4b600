/*
  mailguard starter rules: PDF actions that start programs.
*/

rule PDF_Launch_Action
{
    meta:
        description = "PDF with a /Launch action (opens a file or runs a program when triggered)"
        severity = "high"
        reference = "https://opensource.adobe.com/dc-acrobat-sdk-docs/pdfstandards/PDF32000_2008.pdf"
        author = "mailguard"

    strings:
        $pdf    = "%PDF-"
        $launch = /\/Launch[\s\/<>\[\]()%]/
        // The same name written with #xx escapes (PDF 1.2+ name syntax): one
        // string per position of the first escaped letter.
        $esc1 = "/#4C" nocase
        $esc2 = "/L#61"
        $esc3 = "/La#75"
        $esc4 = "/Lau#6E" nocase
        $esc5 = "/Laun#63"
        $esc6 = "/Launc#68"

    condition:
        $pdf in (0 .. 1024) and ($launch or any of ($esc*))
}
